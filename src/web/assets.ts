import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Content types of the files Vite emits (anything else is served as bytes). */
const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

export function contentTypeOf(file: string): string {
  return TYPES[path.extname(file)] ?? 'application/octet-stream';
}

/**
 * Where `npm run build:web` writes the UI: `dist/web` of the package root (found from this file,
 * whether it runs from `src/web` under tsx or from `dist/src/web` after `npm run build`).
 */
export function defaultAssetDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'dist', 'web');
    dir = path.dirname(dir);
  }
  return path.resolve('dist', 'web');
}

/** A file of the built UI, read once and kept (the build's files never change while serving). */
export class AssetCache {
  private readonly files = new Map<string, Buffer | null>();

  constructor(readonly dir: string) {}

  /** The file's bytes, or null when it does not exist. `name` is a plain file name under `assets/`, or index.html. */
  async read(name: string): Promise<Buffer | null> {
    if (this.files.has(name)) return this.files.get(name)!;
    let body: Buffer | null = null;
    try {
      body = await readFile(path.join(this.dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // index.html is not kept while missing: a build that lands later is picked up.
    if (body || name !== 'index.html') this.files.set(name, body);
    return body;
  }
}
