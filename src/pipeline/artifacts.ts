import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

export interface PackedArtifact {
  /** The file to upload (the workspace file itself, or a staged tar.gz). */
  file: string;
  contentType: string;
  sha256: string;
  cleanup(): Promise<void>;
}

const TAR_TIMEOUT_MS = 10 * 60_000;

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/** `tar -czf out -C dir .` with an argument array, an explicit environment, a timeout and group kill. */
function tarDirectory(dir: string, out: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('tar', ['-czf', out, '-C', dir, '.'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' },
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 8192) stderr += c.toString('utf8');
    });
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      stderr += '(timed out)';
    }, TAR_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else
        reject(
          new Error(`tar failed (${code ?? 'killed'}): ${stderr.trim().split('\n').slice(-2).join(' | ')}`),
        );
    });
  });
}

/**
 * Resolves an artifact path of the definition inside the workspace (never outside it, also not
 * through a symlink) and prepares it for upload: a file as it is, a directory as tar.gz staged in
 * `stagingDir`. Returns a problem text when there is nothing (usable) at the path.
 */
export async function packArtifact(
  workspaceDir: string,
  relPath: string,
  stagingDir: string,
): Promise<PackedArtifact | string> {
  const root = await realpath(workspaceDir).catch(() => null);
  if (!root) return 'the workspace is not on this machine';
  const candidate = path.resolve(root, relPath);
  let target: string;
  try {
    target = await realpath(candidate);
  } catch {
    return `"${relPath}" does not exist in the workspace`;
  }
  if (target !== root && !target.startsWith(`${root}${path.sep}`))
    return `"${relPath}" points outside the workspace`;
  const info = await lstat(target);
  if (info.isFile()) {
    return {
      file: target,
      contentType: 'application/octet-stream',
      sha256: await sha256Of(target),
      cleanup: async () => {},
    };
  }
  if (!info.isDirectory()) return `"${relPath}" is neither a file nor a directory`;
  const out = path.join(stagingDir, `artifact-${randomUUID()}.tar.gz`);
  try {
    await tarDirectory(target, out);
    return {
      file: out,
      contentType: 'application/gzip',
      sha256: await sha256Of(out),
      cleanup: () => rm(out, { force: true }),
    };
  } catch (err) {
    await rm(out, { force: true });
    throw err;
  }
}
