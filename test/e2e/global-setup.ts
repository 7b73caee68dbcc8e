import { spawnSync } from 'node:child_process';
import { repoRoot } from '../helpers/process.js';

/** The browser tests run against the built UI: build it (a few seconds) so they never test a stale one. */
export default function setup(): void {
  const build = spawnSync('npm', ['run', '--silent', 'build:web'], { cwd: repoRoot, stdio: 'inherit' });
  if (build.status !== 0) throw new Error(`npm run build:web failed (${build.status})`);
}
