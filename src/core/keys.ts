import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';

/**
 * The master key: from PLATFORM_MASTER_KEY, or (outside production) generated once and kept in
 * `<data_dir>/master.key` with mode 0600. Written with O_EXCL so two instances starting together
 * agree on one key.
 */
export function loadMasterKey(config: Pick<Config, 'master_key' | 'data_dir' | 'env'>): Buffer {
  if (config.master_key) return Buffer.from(config.master_key, 'hex');
  if (config.env === 'production') throw new Error('PLATFORM_MASTER_KEY is required in production');
  const file = path.join(config.data_dir, 'master.key');
  mkdirSync(config.data_dir, { recursive: true });
  try {
    writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  chmodSync(file, 0o600);
  const hex = readFileSync(file, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error(`${file} does not hold a 64-hex-character key`);
  return Buffer.from(hex, 'hex');
}

/** Independent sub-keys for each purpose, so no key is used for two things. */
export function deriveKey(master: Buffer, purpose: string): Buffer {
  return createHmac('sha256', master).update(`platform:${purpose}`).digest();
}
