#!/usr/bin/env node
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, realpathSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type AuthService, createIdentity, generatePassword } from './auth/index.js';
import { configCommand } from './cli/config-command.js';
import { doctor } from './cli/doctor.js';
import { commandHelp, commandNames, globalHelp, isCommand, UsageError, unknownName } from './cli/help.js';
import { isClientCommand, runClient } from './client/index.js';
import { type Config, ConfigError, loadConfig } from './config.js';
import { systemActor } from './core/audit.js';
import { AppError } from './core/errors.js';
import { loadMasterKey } from './core/keys.js';
import { createLogger, logDestination } from './core/logger.js';
import { isPermission, type Permission } from './core/permissions.js';
import { whileNoServerRuns } from './core/running.js';
import { notificationWebhookSecretsColumn } from './notify/index.js';
import type { RbacService } from './rbac/index.js';
import { rotateSecretsKey } from './secrets/index.js';
import { openStores, serve } from './server.js';
import { closeDrivers } from './store/index.js';
import { VERSION } from './version.js';
import { webhookSecretsColumn } from './webhooks/index.js';

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
  'reference',
]);

/** Command options that take no value. */
const flagOnly = new Set(['help', 'reference']);

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
    if (arg === '-h') {
      options.help = true;
      continue;
    }
    if (!arg.startsWith('--') || arg.length === 2) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const key = arg.slice(2, eq > 0 ? eq : undefined);
    let value: string | boolean = true;
    if (eq > 0) value = arg.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--') && !flagOnly.has(key)) value = argv[++i]!;
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

export async function main(argv: string[]): Promise<number> {
  const { positionals, flags, options } = parseCommandLine(argv);
  const [command = 'help', sub, ...rest] = positionals;
  if (!isCommand(command)) {
    throw new UsageError(unknownName('command', command, commandNames));
  }
  if (command === 'help') {
    if (sub === undefined) process.stdout.write(globalHelp());
    else if (isCommand(sub)) process.stdout.write(commandHelp(sub));
    else throw new UsageError(unknownName('command', sub, commandNames));
    return 0;
  }
  if (options.help) {
    process.stdout.write(commandHelp(command));
    return 0;
  }
  if (command === 'version') {
    say(VERSION);
    return 0;
  }
  // The client of a remote platform (src/client/): its own options (-R, --json), no server configuration.
  if (isClientCommand(command)) {
    return runClient(command, argv.slice(argv.indexOf(command) + 1), {
      io: { out: (text) => process.stdout.write(text), err: (text) => process.stderr.write(text) },
    });
  }
  const sources = {
    env: process.env,
    file: typeof options.config === 'string' ? options.config : undefined,
    flags,
  };
  if (command === 'config') {
    return configCommand(
      sources,
      options.reference === true,
      (text) => process.stdout.write(text),
      (text) => process.stderr.write(text),
    );
  }
  const config = loadConfig(sources);
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
  }
}

const adminCommands = ['create-user', 'reset-password', 'create-token'];

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
      if (!name || !email) throw new UsageError('admin create-user needs <name> and <email>', 'admin');
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
      if (!name) throw new UsageError('admin reset-password needs the user <name>', 'admin');
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
      if (!name) throw new UsageError('admin create-token needs the <user> the token is for', 'admin');
      const scopes = str('scopes')
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const bad = scopes?.filter((s) => !isPermission(s));
      if (bad && bad.length > 0)
        throw new UsageError(
          `unknown scopes: ${bad.join(', ')} (a scope is a permission such as project:read)`,
          'admin',
        );
      const days = str('expires-in-days');
      const expiresAt = days ? new Date(Date.now() + Number(days) * 86_400_000) : null;
      if (expiresAt && Number.isNaN(expiresAt.getTime()))
        throw new UsageError(`--expires-in-days: expected a number of days, got '${days}'`, 'admin');
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
      throw new UsageError(
        sub
          ? unknownName('admin command', sub, adminCommands)
          : `admin needs a command: ${adminCommands.join(', ')}`,
        'admin',
      );
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
  if (sub !== 'rotate-key')
    throw new UsageError(
      sub ? unknownName('secrets command', sub, ['rotate-key']) : 'secrets needs a command: rotate-key',
      'secrets',
    );
  const given = options['new-key'];
  if (given !== undefined && (typeof given !== 'string' || !/^[0-9a-f]{64}$/i.test(given))) {
    throw new UsageError(
      `--new-key: expected 64 hex characters, got ${typeof given === 'string' ? `${given.length} characters` : 'no value'}`,
      'secrets',
    );
  }
  const oldKey = loadMasterKey(config);
  const newKey = typeof given === 'string' ? Buffer.from(given, 'hex') : randomBytes(32);
  if (newKey.equals(oldKey))
    throw new UsageError('secrets rotate-key: the new key is the current key; give another one', 'secrets');
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
      else if (err instanceof UsageError) {
        process.stderr.write(err.describe());
        process.exit(2);
      } else if (err instanceof AppError) process.stderr.write(`platform: ${err.message}\n`);
      else process.stderr.write(`platform: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
