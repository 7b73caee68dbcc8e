import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { AppError } from '../core/errors.js';
import { deriveKey } from '../core/keys.js';

/** First byte of every sealed value: the layout below. A new layout gets a new byte. */
export const SEAL_FORMAT_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** Bytes a sealed value adds to its plaintext: version byte, nonce and tag. */
export const SEAL_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES;

/**
 * The AES-256 key for secrets: a sub-key of the master key (deriveKey(master, 'secrets')), so the
 * master key itself never encrypts anything and other purposes (URL signing…) use other sub-keys.
 */
export function secretsKey(masterKey: Buffer): Buffer {
  return deriveKey(masterKey, 'secrets');
}

/**
 * What a ciphertext is bound to: the row it belongs to. Project id (or 'global') and name,
 * separated by NUL (neither can contain one), so a ciphertext copied to another row fails to open.
 */
export function secretAad(projectId: string | null, name: string): Buffer {
  return Buffer.from(`${projectId ?? 'global'}\0${name}`, 'utf8');
}

/** A sealed value could not be opened. Never carries the value or the key. */
export class SecretDecryptionError extends AppError {
  constructor(reason: string) {
    super(500, 'internal', `a secret could not be decrypted: ${reason}`);
    this.name = 'SecretDecryptionError';
  }
}

/** AES-256-GCM with a fresh random 12-byte nonce: `version ‖ nonce ‖ ciphertext ‖ tag`. */
export function seal(key: Buffer, plaintext: Buffer | string, aad: Buffer): Buffer {
  if (key.length !== 32) throw new Error('secrets key must be 32 bytes');
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const body = Buffer.concat([
    cipher.update(typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext),
    cipher.final(),
  ]);
  return Buffer.concat([Buffer.from([SEAL_FORMAT_VERSION]), nonce, body, cipher.getAuthTag()]);
}

/** Opens what `seal` produced; throws SecretDecryptionError on any mismatch (key, AAD, bytes). */
export function open(key: Buffer, sealed: Uint8Array, aad: Buffer): Buffer {
  // Any Uint8Array: other modules hand in their sealed columns (`Rekey`) as plain byte arrays.
  const data = Buffer.from(sealed);
  if (data.length < SEAL_OVERHEAD) throw new SecretDecryptionError('ciphertext is truncated');
  if (data[0] !== SEAL_FORMAT_VERSION) {
    throw new SecretDecryptionError(`unknown ciphertext format version ${data[0]}`);
  }
  const nonce = data.subarray(1, 1 + NONCE_BYTES);
  const tag = data.subarray(data.length - TAG_BYTES);
  const body = data.subarray(1 + NONCE_BYTES, data.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    throw new SecretDecryptionError(
      'authentication failed (wrong master key, tampered ciphertext or ciphertext of another secret)',
    );
  }
}
