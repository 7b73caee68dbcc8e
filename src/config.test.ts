import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

const dir = mkdtempSync(path.join(tmpdir(), 'platform-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function configFile(text: string): string {
  const file = path.join(dir, `platform-${++files}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** The ConfigError loadConfig throws for these sources (fails the test when it does not throw). */
function configError(...args: Parameters<typeof loadConfig>): ConfigError {
  try {
    loadConfig(...args);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('loadConfig accepted the configuration');
}

const MASTER_KEY = 'ab'.repeat(32);

describe('loadConfig', () => {
  it('applies the defaults', () => {
    const config = loadConfig({ env: {} });
    expect(config.port).toBe(8080);
    expect(config.host).toBe('0.0.0.0');
    expect(config.env).toBe('development');
    expect(config.data_dir).toBe(path.resolve('./data'));
    expect(path.isAbsolute(config.data_dir)).toBe(true);
    expect(config.public_url).toBe('http://localhost:8080');
    expect(config.database_url).toBeUndefined();
    expect(config.valkey_url).toBeUndefined();
    expect(config.admin_name).toBe('admin');
    expect(config.secure_cookies).toBe(false);
    expect(config.cors_origins).toEqual([]);
  });

  it('derives the public URL from the port and the secure-cookie flag from the public URL', () => {
    expect(loadConfig({ env: { PLATFORM_PORT: '9000' } }).public_url).toBe('http://localhost:9000');
    const https = loadConfig({ env: { PLATFORM_PUBLIC_URL: 'https://forge.example.test/' } });
    expect(https.public_url).toBe('https://forge.example.test');
    expect(https.secure_cookies).toBe(true);
  });

  it('merges file < environment < flags', () => {
    const file = configFile(
      ['port: 7000', 'host: 127.0.0.1', 'admin_name: from-file', 'log_level: debug', ''].join('\n'),
    );
    const fileOnly = loadConfig({ env: {}, file });
    expect(fileOnly).toMatchObject({
      port: 7000,
      host: '127.0.0.1',
      admin_name: 'from-file',
      log_level: 'debug',
    });

    const withEnv = loadConfig({ env: { PLATFORM_PORT: '7100', PLATFORM_ADMIN_NAME: 'from-env' }, file });
    expect(withEnv).toMatchObject({
      port: 7100,
      host: '127.0.0.1',
      admin_name: 'from-env',
      log_level: 'debug',
    });

    const withFlags = loadConfig({
      env: { PLATFORM_PORT: '7100', PLATFORM_ADMIN_NAME: 'from-env' },
      file,
      flags: { port: '7200', 'data-dir': path.join(dir, 'flag-data') },
    });
    expect(withFlags).toMatchObject({
      port: 7200,
      host: '127.0.0.1',
      admin_name: 'from-env',
      log_level: 'debug',
      data_dir: path.join(dir, 'flag-data'),
    });
  });

  it('accepts flags with dashes or underscores and boolean words', () => {
    const config = loadConfig({
      env: { PLATFORM_DEV: 'yes' },
      flags: { data_dir: '/srv/x', 'secure-cookies': true },
    });
    expect(config.data_dir).toBe('/srv/x');
    expect(config.secure_cookies).toBe(true);
    expect(config.dev).toBe(true);
  });

  it('treats an empty environment variable as unset', () => {
    expect(loadConfig({ env: { PLATFORM_PORT: '' } }).port).toBe(8080);
  });

  it('ignores PLATFORM_TEST_* tooling variables and non-PLATFORM variables', () => {
    const config = loadConfig({ env: { PLATFORM_TEST_STORE: 'postgres', HOME: '/root', PORT: 'abc' } });
    expect(config.port).toBe(8080);
  });

  it('rejects an unknown PLATFORM_ variable, naming it', () => {
    const err = configError({ env: { PLATFORM_FOO: '1' } });
    expect(err.message).toContain('PLATFORM_FOO');
    expect(err.message).toMatch(/unknown setting/);
    expect(err.problems).toHaveLength(1);
  });

  it('rejects unknown config-file keys and unknown flags, naming them', () => {
    const file = configFile('prot: 80\n');
    expect(configError({ env: {}, file }).message).toMatch(/unknown setting "prot"/);
    expect(configError({ env: {}, flags: { prot: '80' } }).message).toContain('--prot');
  });

  it('rejects a config file that is not a mapping or cannot be read', () => {
    expect(configError({ env: {}, file: configFile('- 1\n- 2\n') }).message).toMatch(/must be a mapping/);
    expect(configError({ env: {}, file: path.join(dir, 'missing.yaml') }).message).toContain('missing.yaml');
  });

  it.each([
    ['PLATFORM_PORT', 'abc', /PLATFORM_PORT: .*number/i],
    ['PLATFORM_PORT', '70000', /PLATFORM_PORT: /],
    ['PLATFORM_MASTER_KEY', 'short', /PLATFORM_MASTER_KEY: must be 32 bytes as 64 hex characters/],
    ['PLATFORM_DATABASE_URL', 'mysql://x', /PLATFORM_DATABASE_URL: must be a postgres:\/\/ URL/],
    ['PLATFORM_VALKEY_URL', 'http://x', /PLATFORM_VALKEY_URL: must be a redis:\/\//],
    ['PLATFORM_ENV', 'staging', /PLATFORM_ENV: /],
    ['PLATFORM_SECURE_COOKIES', 'maybe', /PLATFORM_SECURE_COOKIES: /],
    ['PLATFORM_ADMIN_PASSWORD', 'short', /PLATFORM_ADMIN_PASSWORD: must be at least 8 characters/],
  ])('rejects %s=%s, naming the variable and the problem', (name, value, message) => {
    const err = configError({ env: { [name]: value } });
    expect(err.message).toMatch(message);
    expect(err.problems).toHaveLength(1);
  });

  it('names an invalid value by where it came from', () => {
    expect(configError({ env: {}, file: configFile('port: abc\n') }).message).toMatch(
      /platform-\d+\.yaml: port: /,
    );
    expect(configError({ env: {}, flags: { port: 'abc' } }).message).toMatch(/--port: /);
  });

  it('reports every problem at once', () => {
    const err = configError({
      env: { PLATFORM_FOO: '1', PLATFORM_PORT: 'abc', PLATFORM_MASTER_KEY: 'short' },
    });
    expect(err.problems).toHaveLength(3);
    for (const name of ['PLATFORM_FOO', 'PLATFORM_PORT', 'PLATFORM_MASTER_KEY'])
      expect(err.message).toContain(name);
  });

  describe('production', () => {
    it('refuses to start without master key, database URL and admin password, naming each', () => {
      const err = configError({ env: { PLATFORM_ENV: 'production' } });
      expect(err.problems).toHaveLength(3);
      for (const name of ['PLATFORM_MASTER_KEY', 'PLATFORM_DATABASE_URL', 'PLATFORM_ADMIN_PASSWORD'])
        expect(err.message).toContain(name);
    });

    it('names only what is missing', () => {
      const err = configError({
        env: {
          PLATFORM_ENV: 'production',
          PLATFORM_MASTER_KEY: MASTER_KEY,
          PLATFORM_ADMIN_PASSWORD: 'long-enough',
        },
      });
      expect(err.problems).toEqual([expect.stringContaining('PLATFORM_DATABASE_URL')]);
      expect(err.message).not.toContain('PLATFORM_MASTER_KEY');
      expect(err.message).not.toContain('PLATFORM_ADMIN_PASSWORD');
    });

    it('starts with all three given', () => {
      const config = loadConfig({
        env: {
          PLATFORM_ENV: 'production',
          PLATFORM_MASTER_KEY: MASTER_KEY,
          PLATFORM_DATABASE_URL: 'postgres://u@db.example.test:5432/platform',
          PLATFORM_ADMIN_PASSWORD: 'long-enough',
        },
      });
      expect(config.env).toBe('production');
      expect(config.database_url).toBe('postgres://u@db.example.test:5432/platform');
    });
  });
});
