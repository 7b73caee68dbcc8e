import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapAdmin } from '../src/auth/index.js';
import { loadConfig } from '../src/config.js';
import { systemActor } from '../src/core/audit.js';
import { loadMasterKey } from '../src/core/keys.js';
import { NotifyService, notificationWebhookSecretsColumn } from '../src/notify/index.js';
import {
  type RotationProgress,
  rotateSecretsKey,
  SecretDecryptionError,
  SecretsService,
} from '../src/secrets/index.js';
import { openStores } from '../src/server.js';
import { closeDrivers } from '../src/store/index.js';
import { WebhooksService, webhookSecretsColumn } from '../src/webhooks/index.js';
import {
  createTestPlatform,
  insertProject,
  servicesMissing,
  storeMode,
  type TestPlatform,
} from './helpers/app.js';
import {
  createExternalStores,
  type ExternalStores,
  freePort,
  makeTempDir,
  removeTempDirs,
  runCli,
  startCli,
  waitForHttp,
} from './helpers/process.js';

const consumer = { kind: 'test', id: 'rotation' };

describe.skipIf(servicesMissing)('secrets key rotation (service)', () => {
  let t: TestPlatform;
  let project: string;
  let oldMaster: Buffer;
  const db = () => t.platform.drivers.db.db;
  beforeAll(async () => {
    t = await createTestPlatform();
    project = await insertProject(t, { name: 'rot' });
    oldMaster = loadMasterKey(t.config);
    const secrets = t.platform.services.secrets;
    for (let i = 0; i < 5; i++)
      await secrets.put(systemActor, project, { name: `P_${i}`, value: `project-${i}` });
    await secrets.put(systemActor, null, { name: 'G', value: 'global-value' });
  });
  afterAll(() => t?.close());

  it('is all or nothing: one undecryptable row aborts it and nothing changes', async () => {
    const before = await db()
      .selectFrom('secrets')
      .select(['id', 'ciphertext', 'key_version'])
      .orderBy('id')
      .execute();
    const broken = new SecretsService(db(), randomBytes(32));
    await broken.put(systemActor, project, { name: 'FOREIGN', value: 'sealed with another key' });
    const beforeAudit = await t.auditCount();
    await expect(
      rotateSecretsKey(db(), oldMaster, randomBytes(32), { actor: systemActor, batchSize: 2 }),
    ).rejects.toBeInstanceOf(SecretDecryptionError);
    expect(await t.auditCount()).toBe(beforeAudit);
    const after = await db()
      .selectFrom('secrets')
      .select(['id', 'ciphertext', 'key_version'])
      .where('name', '!=', 'FOREIGN')
      .orderBy('id')
      .execute();
    expect(after.map((r) => Buffer.from(r.ciphertext).toString('hex'))).toEqual(
      before.map((r) => Buffer.from(r.ciphertext).toString('hex')),
    );
    await t.platform.services.secrets.delete(systemActor, project, 'FOREIGN');
  });

  it('re-encrypts everything: the new key decrypts, the old one no longer does', async () => {
    const newMaster = randomBytes(32);
    const progress: RotationProgress[] = [];
    const beforeAudit = await t.auditCount();
    const count = await rotateSecretsKey(db(), oldMaster, newMaster, {
      actor: systemActor,
      batchSize: 2,
      onProgress: (p) => progress.push(p),
    });
    expect(count).toBe(6);
    expect(progress).toEqual([
      { done: 0, total: 6 },
      { done: 2, total: 6 },
      { done: 4, total: 6 },
      { done: 6, total: 6 },
    ]);
    expect(await t.auditCount()).toBe(beforeAudit + 1);
    const audit = await db()
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'secret.rotate_key')
      .execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]!.detail).toMatchObject({ count: 6 });

    const fresh = new SecretsService(db(), newMaster);
    for (let i = 0; i < 5; i++)
      expect(await fresh.resolve(project, `P_${i}`, 'pipeline', consumer)).toBe(`project-${i}`);
    expect(await fresh.resolve(project, 'G', 'agent', consumer)).toBe('global-value');
    const stale = t.platform.services.secrets;
    await expect(stale.resolve(project, 'P_0', 'pipeline', consumer)).rejects.toBeInstanceOf(
      SecretDecryptionError,
    );
    const versions = await db().selectFrom('secrets').select('key_version').execute();
    expect(versions.every((r) => r.key_version === 2)).toBe(true);
    // Metadata versions (value versions) are untouched by a rotation.
    expect((await fresh.get(project, 'P_0')).version).toBe(1);
  });
});

describe.skipIf(servicesMissing)('secrets key rotation: webhook signing secrets', () => {
  let t: TestPlatform;
  afterAll(() => t?.close());

  it('re-encrypts project and notification webhook secrets in the same transaction', async () => {
    t = await createTestPlatform({ config: { PLATFORM_OUTBOUND_ALLOW_LIST: '127.0.0.1' } });
    const db = t.platform.drivers.db.db;
    const project = await insertProject(t, { name: 'hooks' });
    const oldMaster = loadMasterKey(t.config);
    const actor = { id: t.adminId, name: 'admin', ip: null };
    const hooks = t.platform.services.webhooks;
    const hook = await hooks.create(actor, project, {
      url: 'http://127.0.0.1:9/project-hook',
      events: ['push'],
      secret: 'project-hook-signing-secret',
    });
    const notify = t.platform.services.notify;
    await notify.createWebhook(actor, t.adminId, {
      url: 'http://127.0.0.1:9/my-hook',
      secret: 'user-hook-signing-secret',
    });
    const newMaster = randomBytes(32);
    const reported: Record<string, number> = {};
    await rotateSecretsKey(db, oldMaster, newMaster, {
      actor: systemActor,
      columns: [webhookSecretsColumn, notificationWebhookSecretsColumn],
      onColumn: (name, n) => {
        reported[name] = n;
      },
    });
    expect(reported).toEqual({
      'webhooks.secret_ciphertext': 1,
      'notification_webhooks.secret_ciphertext': 1,
    });
    const log = pino({ level: 'silent' });
    const fresh = new WebhooksService(db, newMaster, hooks.options, log);
    expect((await fresh.target(hook.id))?.secret?.toString()).toBe('project-hook-signing-secret');
    await expect(hooks.target(hook.id)).rejects.toBeInstanceOf(SecretDecryptionError);
    const freshNotify = new NotifyService(db, newMaster, notify.options, false, log);
    const opened = await freshNotify.webhookSecret(t.adminId, 'http://127.0.0.1:9/my-hook');
    expect(opened.secret?.toString()).toBe('user-hook-signing-secret');
    await expect(notify.webhookSecret(t.adminId, 'http://127.0.0.1:9/my-hook')).rejects.toBeInstanceOf(
      SecretDecryptionError,
    );
    const audit = await db
      .selectFrom('audit_log')
      .select('detail')
      .where('action', '=', 'secret.rotate_key')
      .execute();
    expect(audit.at(-1)?.detail).toMatchObject({
      tables: { webhooks: 1, notification_webhooks: 1 },
    });
  });
});

describe.skipIf(servicesMissing)(`platform secrets rotate-key (${storeMode})`, () => {
  let external: ExternalStores | undefined;
  afterEach(async () => {
    await external?.drop();
    external = undefined;
    removeTempDirs();
  });

  /** A store with secrets in it, written the way the server would, then closed. */
  async function seed(env: Record<string, string>): Promise<{ project: string; oldMaster: Buffer }> {
    const config = loadConfig({ env: { ...env, PLATFORM_LOG_LEVEL: 'warn' } });
    const { drivers, masterKey } = await openStores(config, pino({ level: 'warn' }));
    try {
      const admin = await bootstrapAdmin(drivers.db.db, {
        name: 'admin',
        email: 'admin@example.test',
        password: 'pw-for-rotation-test',
      });
      const adminId =
        (admin as { id?: string } | undefined)?.id ??
        (
          await drivers.db.db
            .selectFrom('users')
            .select('id')
            .where('name', '=', 'admin')
            .executeTakeFirstOrThrow()
        ).id;
      const { id: project } = await drivers.db.db
        .insertInto('projects')
        .values({ owner_id: adminId, name: 'cli-rot', visibility: 'private', repo_path: 'repos/cli-rot.git' })
        .returning('id')
        .executeTakeFirstOrThrow();
      const secrets = new SecretsService(drivers.db.db, masterKey);
      await secrets.put(systemActor, project, {
        name: 'DEPLOY_KEY',
        value: 'cli-project-value',
        scope: 'deploy',
      });
      await secrets.put(systemActor, null, { name: 'SHARED', value: 'cli-global-value' });
      await secrets.put(systemActor, null, { name: 'OTHER', value: 'cli-other-value' });
      return { project, oldMaster: masterKey };
    } finally {
      await closeDrivers(drivers);
    }
  }

  async function check(
    env: Record<string, string>,
    project: string,
    key: Buffer,
    ok: boolean,
  ): Promise<void> {
    const config = loadConfig({ env: { ...env, PLATFORM_LOG_LEVEL: 'warn' } });
    const { drivers } = await openStores(config, pino({ level: 'warn' }));
    try {
      const secrets = new SecretsService(drivers.db.db, key);
      if (ok) {
        expect(await secrets.resolve(project, 'DEPLOY_KEY', 'deploy', consumer)).toBe('cli-project-value');
        expect(await secrets.resolve(project, 'SHARED', 'pipeline', consumer)).toBe('cli-global-value');
        expect(await secrets.resolve(null, 'OTHER', 'agent', consumer)).toBe('cli-other-value');
      } else {
        await expect(secrets.resolve(project, 'DEPLOY_KEY', 'deploy', consumer)).rejects.toBeInstanceOf(
          SecretDecryptionError,
        );
      }
    } finally {
      await closeDrivers(drivers);
    }
  }

  it('rejects a malformed --new-key', async () => {
    for (const args of [['--new-key', 'abc'], ['--new-key']]) {
      const result = await runCli(['secrets', 'rotate-key', ...args], { PLATFORM_DATA_DIR: makeTempDir() });
      // A usage error (exit 2, as the CLI answers every malformed command line).
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/64 hex/);
    }
  });

  it('key file: re-encrypts and replaces <data_dir>/master.key after the commit', async () => {
    const dataDir = makeTempDir();
    if (storeMode === 'postgres') external = await createExternalStores();
    const env: Record<string, string> = { PLATFORM_DATA_DIR: dataDir, ...external?.env };
    const { project, oldMaster } = await seed(env);
    const keyFile = path.join(dataDir, 'master.key');
    expect(readFileSync(keyFile, 'utf8').trim()).toBe(oldMaster.toString('hex'));

    const result = await runCli(['secrets', 'rotate-key'], env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('3/3 secrets');
    expect(result.stdout).toContain('committed: 3 secrets');
    const newHex = readFileSync(keyFile, 'utf8').trim();
    expect(newHex).toMatch(/^[0-9a-f]{64}$/);
    expect(newHex).not.toBe(oldMaster.toString('hex'));
    expect(existsSync(`${keyFile}.new`)).toBe(false);
    expect(result.stdout).not.toContain(newHex);
    await check(env, project, Buffer.from(newHex, 'hex'), true);
    await check(env, project, oldMaster, false);
  });

  it('is refused with a clear message while a server runs, changing nothing; works once it stopped', async () => {
    const dataDir = makeTempDir();
    if (storeMode === 'postgres') external = await createExternalStores();
    const port = await freePort();
    const env: Record<string, string> = {
      PLATFORM_DATA_DIR: dataDir,
      PLATFORM_PORT: String(port),
      PLATFORM_HOST: '127.0.0.1',
      PLATFORM_PUBLIC_URL: `http://127.0.0.1:${port}`,
      PLATFORM_ADMIN_PASSWORD: 'pw-for-rotation-test',
      ...external?.env,
    };
    const { project, oldMaster } = await seed(env);
    const keyFile = path.join(dataDir, 'master.key');
    const server = startCli(['serve'], env);
    let refused: Awaited<ReturnType<typeof runCli>>;
    try {
      await waitForHttp(`http://127.0.0.1:${port}/readyz`, server, { timeoutMs: 90_000 });
      refused = await runCli(['secrets', 'rotate-key'], env);
    } finally {
      server.signal('SIGTERM');
      await server.waitForExit(30_000);
    }
    expect(refused.code, refused.stdout).toBe(1);
    expect(refused.stderr).toMatch(/refused: a platform server is running against this database/);
    expect(refused.stderr).toMatch(/Stop every `platform serve` instance first/);
    expect(readFileSync(keyFile, 'utf8').trim()).toBe(oldMaster.toString('hex'));
    expect(existsSync(`${keyFile}.new`)).toBe(false);
    await check(env, project, oldMaster, true);

    const done = await runCli(['secrets', 'rotate-key'], env);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain('committed: 3 secrets');
    await check(env, project, Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'hex'), true);
  }, 240_000);

  it('key from configuration: uses --new-key and prints the PLATFORM_MASTER_KEY to set', async () => {
    const dataDir = makeTempDir();
    const oldHex = randomBytes(32).toString('hex');
    if (storeMode === 'postgres') external = await createExternalStores();
    const env: Record<string, string> = {
      PLATFORM_DATA_DIR: dataDir,
      PLATFORM_MASTER_KEY: oldHex,
      ...external?.env,
    };
    const { project } = await seed(env);
    const newHex = randomBytes(32).toString('hex');
    const result = await runCli(['secrets', 'rotate-key', '--new-key', newHex], env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`PLATFORM_MASTER_KEY=${newHex}`);
    expect(existsSync(path.join(dataDir, 'master.key'))).toBe(false);
    await check(env, project, Buffer.from(newHex, 'hex'), true);
    await check(env, project, Buffer.from(oldHex, 'hex'), false);
  });
});
