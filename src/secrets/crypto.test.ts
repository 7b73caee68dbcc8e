import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deriveKey } from '../core/keys.js';
import { open, SEAL_OVERHEAD, SecretDecryptionError, seal, secretAad, secretsKey } from './crypto.js';

const key = randomBytes(32);
const aad = secretAad('0b8f0c2e-4a51-4a57-9d3e-3f7c1c2d7e11', 'DB_PASSWORD');
const VALUE = 'hunter2-very-secret-value';

function expectDecryptionError(fn: () => unknown): SecretDecryptionError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SecretDecryptionError);
    expect((err as Error).message).not.toContain(VALUE);
    return err as SecretDecryptionError;
  }
  throw new Error('expected a SecretDecryptionError');
}

describe('secrets crypto', () => {
  it('round-trips a value', () => {
    const sealed = seal(key, VALUE, aad);
    expect(open(key, sealed, aad).toString('utf8')).toBe(VALUE);
  });

  it('round-trips empty, binary-ish and 64 KiB values', () => {
    for (const v of ['', 'ünïcødé ✓ \u0000 nul', 'x'.repeat(64 * 1024)]) {
      expect(open(key, seal(key, v, aad), aad).toString('utf8')).toBe(v);
    }
  });

  it('stores version byte ‖ 12-byte nonce ‖ ciphertext ‖ 16-byte tag', () => {
    const sealed = seal(key, VALUE, aad);
    expect(sealed[0]).toBe(1);
    expect(sealed.length).toBe(Buffer.byteLength(VALUE) + SEAL_OVERHEAD);
    expect(SEAL_OVERHEAD).toBe(29);
    expect(sealed.includes(Buffer.from(VALUE))).toBe(false);
  });

  it('uses a fresh nonce per encryption', () => {
    const a = seal(key, VALUE, aad);
    const b = seal(key, VALUE, aad);
    expect(a.subarray(1, 13).equals(b.subarray(1, 13))).toBe(false);
    expect(a.equals(b)).toBe(false);
  });

  it('accepts a plain Uint8Array, not only a Buffer', () => {
    const sealed = seal(key, VALUE, aad);
    expect(open(key, new Uint8Array(sealed), aad).toString()).toBe(VALUE);
  });

  it('rejects a tampered ciphertext, nonce or tag', () => {
    const sealed = seal(key, VALUE, aad);
    for (const index of [5, 14, sealed.length - 1]) {
      const tampered = Buffer.from(sealed);
      tampered[index]! ^= 0x01;
      expectDecryptionError(() => open(key, tampered, aad));
    }
  });

  it('rejects the wrong key', () => {
    const sealed = seal(key, VALUE, aad);
    const err = expectDecryptionError(() => open(randomBytes(32), sealed, aad));
    expect(err.status).toBe(500);
  });

  it('rejects the wrong AAD: another project, another name, global', () => {
    const sealed = seal(key, VALUE, aad);
    expectDecryptionError(() =>
      open(key, sealed, secretAad('9a1c3d4e-0000-4000-8000-000000000000', 'DB_PASSWORD')),
    );
    expectDecryptionError(() =>
      open(key, sealed, secretAad('0b8f0c2e-4a51-4a57-9d3e-3f7c1c2d7e11', 'DB_PASSWORD2')),
    );
    expectDecryptionError(() => open(key, sealed, secretAad(null, 'DB_PASSWORD')));
  });

  it('rejects truncated data and an unknown format version', () => {
    const sealed = seal(key, VALUE, aad);
    expect(expectDecryptionError(() => open(key, sealed.subarray(0, 20), aad)).message).toMatch(/truncated/);
    const v2 = Buffer.from(sealed);
    v2[0] = 2;
    expect(expectDecryptionError(() => open(key, v2, aad)).message).toMatch(/format version 2/);
  });

  it('derives the secrets key from the master key (not the master key itself)', () => {
    const master = randomBytes(32);
    expect(secretsKey(master).equals(deriveKey(master, 'secrets'))).toBe(true);
    expect(secretsKey(master).equals(master)).toBe(false);
    const sealed = seal(secretsKey(master), VALUE, aad);
    expectDecryptionError(() => open(master, sealed, aad));
  });
});
