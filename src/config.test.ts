import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, closestName, inspectConfig, loadConfig } from './config.js';

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
    expect(configError({ env: {}, file }).problems).toEqual([
      `config file ${file}: "prot": unknown setting; did you mean port? (\`platform config\` lists every setting)`,
    ]);
    expect(configError({ env: {}, flags: { prot: '80' } }).problems).toEqual([
      '--prot: unknown option; did you mean --port? (`platform --help` lists the options)',
    ]);
  });

  it('rejects a config file that is not a mapping or cannot be read', () => {
    expect(configError({ env: {}, file: configFile('- 1\n- 2\n') }).message).toMatch(/must be a mapping/);
    expect(configError({ env: {}, file: path.join(dir, 'missing.yaml') }).message).toContain('missing.yaml');
  });

  it.each([
    ['PLATFORM_PORT', 'abc', /^PLATFORM_PORT: expected a port number 1–65535, got 'abc'$/],
    ['PLATFORM_PORT', '70000', /^PLATFORM_PORT: expected a port number 1–65535, got '70000'$/],
    ['PLATFORM_PORT', '0', /^PLATFORM_PORT: expected a port number 1–65535, got '0'$/],
    [
      'PLATFORM_DATABASE_POOL_SIZE',
      '2.5',
      /^PLATFORM_DATABASE_POOL_SIZE: expected a whole number 1–500, got '2.5'$/,
    ],
    [
      'PLATFORM_MASTER_KEY',
      'short',
      /^PLATFORM_MASTER_KEY: expected 32 bytes as 64 hex characters, got a value of 5 characters \(not shown\)$/,
    ],
    [
      'PLATFORM_DATABASE_URL',
      'mysql://x',
      /^PLATFORM_DATABASE_URL: expected a postgres:\/\/ URL, got 'mysql:\/\/x'$/,
    ],
    [
      'PLATFORM_VALKEY_URL',
      'http://x',
      /^PLATFORM_VALKEY_URL: expected a redis:\/\/ or rediss:\/\/ URL, got 'http:\/\/x'$/,
    ],
    [
      'PLATFORM_ENV',
      'staging',
      /^PLATFORM_ENV: expected one of development, production, test, got 'staging'$/,
    ],
    [
      'PLATFORM_SECURE_COOKIES',
      'maybe',
      /^PLATFORM_SECURE_COOKIES: expected true or false \(or 1\/0, yes\/no\), got 'maybe'$/,
    ],
    [
      'PLATFORM_PUBLIC_URL',
      'forge',
      /^PLATFORM_PUBLIC_URL: expected a URL such as https:\/\/forge.example.com, got 'forge'$/,
    ],
    [
      'PLATFORM_ADMIN_PASSWORD',
      'short',
      /^PLATFORM_ADMIN_PASSWORD: expected at least 8 characters, got a value of 5 characters \(not shown\)$/,
    ],
  ])('rejects %s=%s, naming the variable and the problem', (name, value, message) => {
    const err = configError({ env: { [name]: value } });
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(message);
    // A secret's value is never echoed.
    if (name === 'PLATFORM_MASTER_KEY' || name === 'PLATFORM_ADMIN_PASSWORD')
      expect(err.message).not.toContain(value);
  });

  it('names an invalid value by where it came from', () => {
    expect(configError({ env: {}, file: configFile('port: abc\n') }).message).toMatch(
      /platform-\d+\.yaml: port: expected a port number 1–65535, got 'abc'/,
    );
    expect(configError({ env: {}, flags: { port: 'abc' } }).message).toMatch(/--port: .*got 'abc'/);
  });

  it('takes the OTLP/gRPC address as host:port, off when unset', () => {
    expect(loadConfig({ env: {} }).otlp_grpc_address).toBeUndefined();
    expect(loadConfig({ env: { PLATFORM_OTLP_GRPC_ADDRESS: '' } }).otlp_grpc_address).toBeUndefined();
    for (const address of ['0.0.0.0:4317', 'localhost:4317', '[::]:4317', '127.0.0.1:0']) {
      expect(loadConfig({ env: { PLATFORM_OTLP_GRPC_ADDRESS: address } }).otlp_grpc_address).toBe(address);
    }
    for (const bad of ['4317', '0.0.0.0', '0.0.0.0:65536', 'unix:/tmp/otlp.sock', 'host :4317']) {
      expect(configError({ env: { PLATFORM_OTLP_GRPC_ADDRESS: bad } }).problems).toEqual([
        `PLATFORM_OTLP_GRPC_ADDRESS: expected host:port such as 0.0.0.0:4317 (port 0–65535), got '${bad}'`,
      ]);
    }
  });

  it('suggests the setting an unknown PLATFORM_ variable was probably meant to be', () => {
    expect(configError({ env: { PLATFORM_PROT: '8401' } }).problems).toEqual([
      'PLATFORM_PROT: unknown setting; did you mean PLATFORM_PORT? (`platform config` lists every setting)',
    ]);
    expect(configError({ env: { PLATFORM_DATABSE_URL: 'postgres://x' } }).problems[0]).toContain(
      'did you mean PLATFORM_DATABASE_URL?',
    );
    // Nothing close: no guess.
    expect(configError({ env: { PLATFORM_FOO: '1' } }).problems[0]).not.toContain('did you mean');
  });

  it('says what to do next', () => {
    expect(configError({ env: { PLATFORM_PORT: 'abc' } }).message).toContain(
      '`platform config` shows every setting',
    );
  });

  it('reports every problem at once', () => {
    const err = configError({
      env: { PLATFORM_FOO: '1', PLATFORM_PORT: 'abc', PLATFORM_MASTER_KEY: 'short' },
    });
    expect(err.problems).toHaveLength(3);
    for (const name of ['PLATFORM_FOO', 'PLATFORM_PORT', 'PLATFORM_MASTER_KEY'])
      expect(err.message).toContain(name);
  });

  describe('closestName', () => {
    it.each([
      ['serv', 'serve'],
      ['migrat', 'migrate'],
      ['CONFIG', 'config'],
      ['xyz', undefined],
      ['s', undefined],
    ])('%s → %s', (word, expected) => {
      expect(closestName(word, ['serve', 'migrate', 'config', 'version'])).toBe(expected);
    });
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

describe('inspectConfig', () => {
  const row = (report: ReturnType<typeof inspectConfig>, env: string) =>
    report.rows.find((r) => r.env === env);

  it('shows the effective value of every setting and where it came from', () => {
    const file = configFile('log_level: debug\nport: 7000\n');
    const report = inspectConfig({ env: { PLATFORM_PORT: '8401' }, file, flags: { host: '127.0.0.1' } });
    expect(report.problems).toEqual([]);
    expect(report.rows).toHaveLength(Object.keys(report.config!).length);
    expect(row(report, 'PLATFORM_PORT')).toMatchObject({ value: '8401', source: 'environment' });
    expect(row(report, 'PLATFORM_HOST')).toMatchObject({
      value: '127.0.0.1',
      source: 'flag',
      origin: '--host',
    });
    expect(row(report, 'PLATFORM_LOG_LEVEL')).toMatchObject({
      value: 'debug',
      source: 'file',
      origin: `${file}: log_level`,
    });
    expect(row(report, 'PLATFORM_ENV')).toMatchObject({ value: 'development', source: 'default' });
    expect(row(report, 'PLATFORM_PUBLIC_URL')).toMatchObject({
      value: 'http://localhost:8401',
      source: 'default',
      origin: 'from PLATFORM_PORT',
    });
    expect(row(report, 'PLATFORM_DATA_DIR')!.value).toBe(path.resolve('./data'));
    expect(row(report, 'PLATFORM_DATABASE_URL')!.value).toBe('—');
  });

  it('masks secrets', () => {
    const report = inspectConfig({
      env: { PLATFORM_MASTER_KEY: MASTER_KEY, PLATFORM_SMTP_PASSWORD: 'hunter22' },
    });
    expect(row(report, 'PLATFORM_MASTER_KEY')).toMatchObject({
      value: '******** (set)',
      source: 'environment',
    });
    expect(row(report, 'PLATFORM_SMTP_PASSWORD')!.value).toBe('******** (set)');
    const shown = JSON.stringify([report.rows, report.problems]);
    expect(shown).not.toContain(MASTER_KEY);
    expect(shown).not.toContain('hunter22');
  });

  it('reports the problems without throwing, marking the bad rows', () => {
    const report = inspectConfig({ env: { PLATFORM_PORT: 'abc', PLATFORM_PROT: '1' } });
    expect(report.config).toBeUndefined();
    expect(report.problems).toHaveLength(2);
    expect(row(report, 'PLATFORM_PORT')).toMatchObject({
      value: 'abc',
      problem: "PLATFORM_PORT: expected a port number 1–65535, got 'abc'",
    });
  });
});
