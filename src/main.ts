#!/usr/bin/env node
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { type AuthService, createIdentity, generatePassword } from './auth/index.js';
import { type Config, ConfigError, configTable, loadConfig } from './config.js';
import { systemActor } from './core/audit.js';
import { AppError } from './core/errors.js';
import { deriveKey, loadMasterKey } from './core/keys.js';
import { createLogger, logDestination } from './core/logger.js';
import { isPermission, type Permission } from './core/permissions.js';
import { whileNoServerRuns } from './core/running.js';
import { Mailer, notificationWebhookSecretsColumn } from './notify/index.js';
import type { RbacService } from './rbac/index.js';
import { createLocalRunner } from './runners/index.js';
import { rotateSecretsKey } from './secrets/index.js';
import { openStores, serve } from './server.js';
import { closeDrivers, openDrivers, pendingMigrations } from './store/index.js';
import { VERSION } from './version.js';
import { webhookSecretsColumn } from './webhooks/index.js';

const USAGE = `platform ${VERSION} — forge, CI, auth, observability, notifications, secrets and CD in one service

Usage: platform <command> [options]

Commands:
  serve                                   start the server (default: embedded PostgreSQL in ./data, port 8080)
  migrate                                 apply pending database migrations and exit
  admin create-user <name> <email> [--password P] [--role ROLE] [--type human|agent|service_account]
  admin reset-password <name> [--password P]
  admin create-token <user> [--token-name N] [--scopes a,b] [--expires-in-days D]
  secrets rotate-key [--new-key HEX]      re-encrypt every secret and webhook signing secret with a new master
                                          key (64 hex; generated when omitted); refused while a server runs
  doctor                                  check git, database, cache, object store, executor and SMTP
  config                                  print the table of settings
  version                                 print the version

Options:
  --config <file>                         YAML/JSON config file (environment variables override it)
  --<setting>                             any setting, e.g. --port 9000 --data-dir /srv/platform
Every setting is also an environment variable PLATFORM_<SETTING>; see \`platform config\`.
`;

/** Options that belong to commands, not to the server configuration. */
const commandOptions = new Set([
  'password',
  'role',
  'type',
  'token-name',
  'scopes',
  'expires-in-days',
  'new-key',
  'help',
  'config',
]);

/**
 * `--name value`, `--name=value` and bare `--flag` (then true). Command options go to `options`,
 * everything else is a configuration setting (`--port 9000`), validated by loadConfig.
 */
export function parseCommandLine(argv: string[]) {
  const positionals: string[] = [];
  const flags: Record<string, string | boolean> = {};
  const options: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--') || arg.length === 2) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const key = arg.slice(2, eq > 0 ? eq : undefined);
    let value: string | boolean = true;
    if (eq > 0) value = arg.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--') && key !== 'help') value = argv[++i]!;
    if (commandOptions.has(key)) options[key] = value;
    else flags[key] = value;
  }
  return { positionals, flags, options };
}

const say = (line: string) => process.stdout.write(`${line}\n`);

async function withIdentity<T>(
  config: Config,
  command: string,
  fn: (auth: AuthService, rbac: RbacService) => Promise<T>,
): Promise<T> {
  const log = createLogger({ ...config, log_level: 'warn' });
  const { drivers } = await openStores(config, log, command);
  const { rbac, auth } = createIdentity(
    config,
    { db: drivers.db.db, cache: drivers.cache, pubsub: drivers.pubsub },
    log,
  );
  try {
    return await fn(auth, rbac);
  } finally {
    await closeDrivers(drivers);
  }
}

async function doctor(config: Config): Promise<boolean> {
  let ok = true;
  const report = (good: boolean, what: string, detail: string, required = true) => {
    say(`${good ? '✓' : required ? '✗' : '!'} ${what}: ${detail}`);
    if (!good && required) ok = false;
  };
  const run = promisify(execFile);
  for (const [bin, args, required, hint] of [
    ['git', ['--version'], true, 'install git (apt-get install git)'],
    ['git-lfs', ['--version'], false, 'install git-lfs for LFS support (apt-get install git-lfs)'],
  ] as const) {
    try {
      const { stdout } = await run(bin, [...args], { timeout: 5000 });
      report(true, bin, stdout.trim());
    } catch {
      report(false, bin, `not found — ${hint}`, required);
    }
  }
  let drivers: Awaited<ReturnType<typeof openDrivers>> | undefined;
  // The doctor looks, it does not set up: an empty data directory stays empty.
  const initialised = existsSync(config.data_dir) && readdirSync(config.data_dir).length > 0;
  if (!initialised && !config.database_url) {
    report(
      false,
      'database',
      `embedded PostgreSQL not initialised yet in ${path.resolve(config.data_dir, 'postgres')} — the first \`platform serve\` (or \`platform migrate\`) creates it`,
      false,
    );
  }
  try {
    if (!initialised && !config.database_url) throw new SkipChecks();
    const keyKnown = Boolean(config.master_key) || existsSync(path.join(config.data_dir, 'master.key'));
    drivers = await openDrivers(
      config,
      keyKnown ? deriveKey(loadMasterKey(config), 'object-urls') : randomBytes(32),
      { command: 'doctor' },
    );
    const pending = await pendingMigrations(drivers.db.db);
    report(
      pending.length === 0,
      'database',
      `${drivers.db.kind} reachable; ${pending.length === 0 ? 'schema up to date' : `${pending.length} migrations pending — run \`platform migrate\` (\`platform serve\` applies them at start-up)`}`,
      false,
    );
    for (const [name, fn] of [
      ['cache', () => drivers!.cache.ping()],
      ['pub/sub', () => drivers!.pubsub.ping()],
      ['object store', () => drivers!.objects.ping()],
    ] as const) {
      try {
        await fn();
        report(true, name, 'reachable');
      } catch (err) {
        report(false, name, `${(err as Error).message} — check its PLATFORM_* settings`);
      }
    }
  } catch (err) {
    if (err instanceof SkipChecks) {
      // reported above
    } else
      report(
        false,
        'database',
        `${(err as Error).message} — check PLATFORM_DATABASE_URL or the data directory`,
      );
  } finally {
    if (drivers) await closeDrivers(drivers);
  }
  if (config.executor === 'local') {
    // The same decision the runner makes before each step: a working sandbox, unsandboxed (as a
    // normal user, said in every step log), or refused (root without a working bubblewrap).
    const runner = createLocalRunner({
      workRoot: path.join(config.pipeline_workspace_dir ?? path.join(config.data_dir, 'workspaces'), 'runs'),
      bwrap: config.runner_bwrap,
      sandboxUser: { uid: config.runner_uid, gid: config.runner_uid },
      readOnlyPaths: config.runner_readonly_paths,
    });
    try {
      const isolation = await runner.isolation();
      if (isolation.mode === 'sandbox')
        report(true, 'executor', `local, steps sandboxed: ${isolation.reason}`);
      else if (isolation.mode === 'unsandboxed')
        report(
          false,
          'executor',
          `local, steps NOT sandboxed: ${isolation.reason} (apt-get install bubblewrap)`,
          false,
        );
      else report(false, 'executor', `local, steps refused: ${isolation.reason}`);
    } catch (err) {
      report(false, 'executor', `local: ${(err as Error).message}`);
    }
  } else {
    report(
      Boolean(config.kubeconfig) || Boolean(process.env.KUBERNETES_SERVICE_HOST),
      'executor',
      'kubernetes: needs PLATFORM_KUBECONFIG or in-cluster credentials',
    );
  }
  if (config.smtp_host) {
    const where = `${config.smtp_host}:${config.smtp_port} (${config.smtp_security})`;
    const mailer = new Mailer(config, 5000);
    try {
      await mailer.verify();
      report(true, 'smtp', `${where}: connected${config.smtp_user ? ' and authenticated' : ''}`);
    } catch (err) {
      report(false, 'smtp', `${where}: ${(err as Error).message} — check PLATFORM_SMTP_*`);
    } finally {
      mailer.close();
    }
  } else {
    report(true, 'smtp', 'not configured (email notifications off; set PLATFORM_SMTP_HOST)');
  }
  return ok;
}

export async function main(argv: string[]): Promise<number> {
  const { positionals, flags, options } = parseCommandLine(argv);
  const [command = 'help', sub, ...rest] = positionals;
  if (command === 'help' || options.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command === 'version') {
    say(VERSION);
    return 0;
  }
  if (command === 'config') {
    say(configTable());
    return 0;
  }
  const config = loadConfig({
    env: process.env,
    file: typeof options.config === 'string' ? options.config : undefined,
    flags,
  });
  switch (command) {
    case 'serve':
      await serve(config);
      return -1; // keep running
    case 'migrate': {
      const log = createLogger(config, logDestination(config));
      const { drivers } = await openStores(config, log, 'migrate');
      await closeDrivers(drivers);
      return 0;
    }
    case 'doctor':
      return (await doctor(config)) ? 0 : 1;
    case 'admin':
      return admin(config, sub, rest, options);
    case 'secrets':
      return secrets(config, sub, options);
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

async function admin(
  config: Config,
  sub: string | undefined,
  args: string[],
  options: Record<string, string | boolean>,
): Promise<number> {
  const str = (name: string) => (typeof options[name] === 'string' ? (options[name] as string) : undefined);
  switch (sub) {
    case 'create-user': {
      const [name, email] = args;
      if (!name || !email)
        throw new UsageError('admin create-user <name> <email> [--password P] [--role ROLE]');
      const password = str('password') ?? generatePassword();
      const userType = (str('type') ?? 'human') as 'human' | 'agent' | 'service_account';
      await withIdentity(config, 'admin create-user', async (auth, rbac) => {
        const user = await auth.createUser(systemActor, { name, email, password, user_type: userType });
        const role = str('role');
        if (role) await rbac.assignRole(systemActor, user.id, { role });
        say(`created user ${user.name} (${user.id})${role ? ` with role ${role}` : ''}`);
        if (!str('password')) say(`password: ${password}`);
      });
      return 0;
    }
    case 'reset-password': {
      const [name] = args;
      if (!name) throw new UsageError('admin reset-password <name> [--password P]');
      const password = str('password') ?? generatePassword();
      await withIdentity(config, 'admin reset-password', (auth) =>
        auth.resetPassword(systemActor, name, password),
      );
      say(`password of ${name} reset; their sessions ended`);
      if (!str('password')) say(`password: ${password}`);
      return 0;
    }
    case 'create-token': {
      const [name] = args;
      if (!name)
        throw new UsageError(
          'admin create-token <user> [--token-name N] [--scopes a,b] [--expires-in-days D]',
        );
      const scopes = str('scopes')
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const bad = scopes?.filter((s) => !isPermission(s));
      if (bad && bad.length > 0) throw new UsageError(`unknown scopes: ${bad.join(', ')}`);
      const days = str('expires-in-days');
      const expiresAt = days ? new Date(Date.now() + Number(days) * 86_400_000) : null;
      if (expiresAt && Number.isNaN(expiresAt.getTime()))
        throw new UsageError('--expires-in-days must be a number');
      const token = await withIdentity(config, 'admin create-token', (auth) =>
        auth.createTokenForUser(systemActor, name, {
          name: str('token-name') ?? 'cli',
          scopes: (scopes as Permission[]) ?? null,
          expires_at: expiresAt,
        }),
      );
      say(token.token);
      return 0;
    }
    default:
      throw new UsageError('admin create-user | reset-password | create-token');
  }
}

/**
 * `secrets rotate-key`: every secret and every webhook signing secret (project and notification
 * webhooks) re-encrypted in ONE transaction; the new key is kept only after the commit. Refused while
 * any `platform serve` runs against the database (core/running.ts). Embedded mode (key in <data_dir>/master.key): the new key is first written beside it
 * (master.key.new, 0600) so a crash between commit and rename loses nothing, then renamed over it.
 * Key from configuration (PLATFORM_MASTER_KEY): the new key is printed to be set there.
 */
async function secrets(
  config: Config,
  sub: string | undefined,
  options: Record<string, string | boolean>,
): Promise<number> {
  if (sub !== 'rotate-key') throw new UsageError('secrets rotate-key [--new-key <64 hex>]');
  const given = options['new-key'];
  if (given !== undefined && (typeof given !== 'string' || !/^[0-9a-f]{64}$/i.test(given))) {
    throw new UsageError('secrets rotate-key [--new-key <64 hex characters>]');
  }
  const oldKey = loadMasterKey(config);
  const newKey = typeof given === 'string' ? Buffer.from(given, 'hex') : randomBytes(32);
  if (newKey.equals(oldKey)) throw new UsageError('secrets rotate-key: the new key is the current key');
  const fromConfig = Boolean(config.master_key);
  const keyFile = path.join(config.data_dir, 'master.key');
  const pendingFile = `${keyFile}.new`;
  const newHex = newKey.toString('hex');
  if (!fromConfig) {
    const fd = openSync(pendingFile, 'w', 0o600);
    try {
      writeSync(fd, `${newHex}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  const log = createLogger({ ...config, log_level: 'warn' });
  let count: number;
  try {
    const { drivers } = await openStores(config, log, 'secrets rotate-key');
    try {
      // Refused while any server runs (they hold the old key in memory); a server starting meanwhile
      // waits for the lock, so it loads the new key file.
      count = await whileNoServerRuns(drivers.db.db, 'secrets rotate-key', async (db) => {
        say('re-encrypting secrets and webhook signing secrets in one transaction…');
        const n = await rotateSecretsKey(db, oldKey, newKey, {
          actor: systemActor,
          onProgress: ({ done, total }) => say(`  ${done}/${total} secrets`),
          columns: [webhookSecretsColumn, notificationWebhookSecretsColumn],
          onColumn: (name, done) => say(`  ${done} values of ${name}`),
        });
        say(`committed: ${n} secrets now encrypted with the new key`);
        if (!fromConfig) {
          renameSync(pendingFile, keyFile);
          say(`new master key written to ${keyFile}`);
        }
        return n;
      });
    } finally {
      await closeDrivers(drivers);
    }
  } catch (err) {
    if (!fromConfig) rmSync(pendingFile, { force: true });
    throw err;
  }
  if (fromConfig) {
    say(
      `the master key comes from configuration: set it to the new key before starting the server (${count} secrets)`,
    );
    say(`PLATFORM_MASTER_KEY=${newHex}`);
  }
  return 0;
}

class UsageError extends Error {}
class SkipChecks extends Error {}

function isEntryPoint(): boolean {
  try {
    return Boolean(process.argv[1]) && import.meta.url === pathToFileURL(realpathSync(process.argv[1]!)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => {
      if (code >= 0) process.exit(code);
    },
    (err: unknown) => {
      if (err instanceof ConfigError) process.stderr.write(`platform: ${err.message}\n`);
      else if (err instanceof UsageError) process.stderr.write(`usage: platform ${err.message}\n`);
      else if (err instanceof AppError) process.stderr.write(`platform: ${err.message}\n`);
      else process.stderr.write(`platform: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
