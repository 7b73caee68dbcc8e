import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { S3ObjectStore } from '../../src/store/objects/index.js';

export const s3Bucket = 'platform-test';

/**
 * s3rver runs in a child process because it encrypts ListObjectsV2 continuation tokens with DES,
 * which Node's OpenSSL 3 only offers with --openssl-legacy-provider; in-process, every truncated
 * (paginated) listing would fail with InternalError. It does not verify SigV4 signatures, so the
 * presigned URL tests here check path and parameter handling, not signing.
 */
export async function startS3(bucket = s3Bucket): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const directory = await mkdtemp(join(tmpdir(), 'platform-s3rver-'));
  const script = `
    const S3rver = require(process.argv[1]);
    const server = new S3rver({
      address: '127.0.0.1', port: 0, silent: true, directory: process.argv[2],
      configureBuckets: [{ name: process.argv[3] }],
    });
    server.run().then(({ port }) => process.stdout.write(JSON.stringify({ port }) + '\\n'));
    process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
  `;
  const child = spawn(
    process.execPath,
    [
      '--openssl-legacy-provider',
      '-e',
      script,
      createRequire(import.meta.url).resolve('s3rver'),
      directory,
      bucket,
    ],
    { env: {}, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = once(child, 'exit');
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout });
      lines.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
      child.once('exit', (code) => reject(new Error(`s3rver exited with ${code}: ${stderr}`)));
    });
    return {
      endpoint: `http://127.0.0.1:${port}`,
      async stop() {
        child.kill('SIGTERM');
        await exited;
        await rm(directory, { recursive: true, force: true });
      },
    };
  } catch (err) {
    child.kill('SIGKILL');
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
}

/** A store on an s3rver started with startS3 (its fixed credentials, path-style URLs). */
export function s3Store(
  endpoint: string,
  overrides: { bucket?: string; listPageSize?: number } = {},
): S3ObjectStore {
  return new S3ObjectStore({
    endpoint,
    region: 'us-east-1',
    bucket: overrides.bucket ?? s3Bucket,
    accessKeyId: 'S3RVER', // s3rver's fixed credentials
    secretAccessKey: 'S3RVER',
    forcePathStyle: true,
    listPageSize: overrides.listPageSize,
  });
}
