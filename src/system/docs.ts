import type { AnyRouteDef } from '../core/http.js';

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function renderDocs(routes: AnyRouteDef[]): string {
  const rows = routes
    .map((r) => {
      const access =
        typeof r.access === 'string'
          ? r.access
          : 'self' in r.access
            ? `self (${r.access.self})`
            : `${r.access.permission}${r.access.projectParam ? ' on project' : ''}`;
      return `<tr><td><code>${r.method}</code></td><td><code>${escapeHtml(r.url)}</code></td><td>${escapeHtml(r.summary)}</td><td>${escapeHtml(access)}</td></tr>`;
    })
    .join('\n');
  return `<!doctype html><html><head><meta charset="utf-8"><title>Platform API</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left}</style>
</head><body><h1>Platform API</h1><p>Machine-readable: <a href="/api/openapi.json">/api/openapi.json</a>. Errors: <code>{"error":{"code","message","details"}}</code>.</p>
<table><thead><tr><th>method</th><th>path</th><th>summary</th><th>access</th></tr></thead><tbody>
${rows}
</tbody></table></body></html>`;
}
