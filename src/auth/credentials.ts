import { createHash, randomBytes } from 'node:crypto';
import { Algorithm, hash, verify } from '@node-rs/argon2';

const ARGON2_OPTIONS = {
  algorithm: Algorithm.Argon2id,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;

export const hashPassword = (password: string) => hash(password, ARGON2_OPTIONS);

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false;
  }
}

let dummyHash: Promise<string> | undefined;
/**
 * A real argon2id hash of a random password, verified when the user does not exist or has no
 * password, so login takes the same time whether or not the name exists.
 */
export function dummyPasswordHash(): Promise<string> {
  dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
  return dummyHash;
}

export const API_TOKEN_PREFIX = 'plat_api_';
export const SESSION_COOKIE = 'platform_session';

/** A random secret with a recognisable prefix (so secret scanners and humans know what it is). */
export function generateSecret(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

/** Only this digest is stored; the raw secret is shown once. SHA-256 suffices: secrets are 256-bit random. */
export function digestSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}
