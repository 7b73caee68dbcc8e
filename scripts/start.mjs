#!/usr/bin/env node
/**
 * `npm start`: builds dist/ only when a source file changed since the last build (a restart is then
 * ready in seconds), the web UI (dist/web) likewise when a file under web/ changed, and runs
 * `platform serve` from it. Signals are passed on, so Ctrl-C and SIGTERM
 * stop the server gracefully; the exit code is the server's.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stamp = path.join(root, 'dist', '.build-stamp');

function newest(target) {
  let latest = 0;
  let stat;
  try {
    stat = statSync(target);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return stat.mtimeMs;
  for (const entry of readdirSync(target)) {
    if (entry.endsWith('.test.ts')) continue;
    latest = Math.max(latest, newest(path.join(target, entry)));
  }
  return latest;
}

const sources = ['src', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json'];
const sourceTime = Math.max(...sources.map((s) => newest(path.join(root, s))));
let built = 0;
try {
  built = statSync(stamp).mtimeMs;
} catch {
  // never built
}
if (sourceTime > built) {
  process.stderr.write('building dist/ (sources changed since the last build)\n');
  const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status ?? 1);
  writeFileSync(stamp, `${new Date().toISOString()}\n`);
}

// The web UI: rebuilt when a file under web/ (or the lock file) is newer than its index.html.
const webIndex = path.join(root, 'dist', 'web', 'index.html');
const webSourceTime = Math.max(newest(path.join(root, 'web')), newest(path.join(root, 'package-lock.json')));
if (webSourceTime > newest(webIndex)) {
  process.stderr.write('building the web UI (dist/web)\n');
  const build = spawnSync('npm', ['run', 'build:web', '--silent'], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status ?? 1);
}

const server = spawn(
  process.execPath,
  [path.join(root, 'dist', 'src', 'main.js'), 'serve', ...process.argv.slice(2)],
  {
    stdio: 'inherit',
  },
);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  // Ctrl-C reaches the server directly (same process group); a signal sent to this process only is passed on.
  process.on(signal, () => {
    if (server.exitCode === null) server.kill(signal);
  });
}
server.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
