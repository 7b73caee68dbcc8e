/**
 * Paths the single-page app never answers: the API, git smart HTTP and LFS, OTLP ingest, deployed
 * apps, MCP, the system endpoints and the UI's own files. A GET there that no route serves keeps the
 * JSON 404 (a client of those paths must never get an HTML page).
 */
const RESERVED_ROOTS = new Set(['api', 'v1', 'apps', 'assets', 'mcp', 'healthz', 'readyz', 'metrics']);

/** The UI's own top-level pages: never git paths here (the real git routes match before the fallback anyway). */
const PAGE_ROOTS = new Set(['projects', 'admin', 'me', 'notifications', 'login']);

export function isReservedPath(pathname: string): boolean {
  const first = pathname.split('/')[1] ?? '';
  if (RESERVED_ROOTS.has(first)) return true;
  if (PAGE_ROOTS.has(first)) return false;
  // Git: /owner/repo/info/…, git-upload-pack, git-receive-pack, and any /owner/repo.git… path.
  if (/^\/[^/]+\/[^/]+\/(info|git-upload-pack|git-receive-pack|objects|HEAD)(\/|$)/.test(pathname))
    return true;
  return /^\/[^/]+\/[^/]+\.git(\/|$)/.test(pathname);
}
