import type { Logger } from 'pino';
import { buildApp, type Platform } from './app.js';
import { bootstrapAdmin } from './auth/index.js';
import type { Config } from './config.js';
import { deriveKey, loadMasterKey } from './core/keys.js';
import { createLogger, logDestination } from './core/logger.js';
import { holdServerRunningLock } from './core/running.js';
import { closeDrivers, type Drivers, migrate, openDrivers } from './store/index.js';

export interface OpenedStores {
  drivers: Drivers;
  masterKey: Buffer;
}

/**
 * Opens the stores and applies pending migrations, reporting progress. `command` is who asks:
 * `serve` holds the data-directory lock; CLI commands use the running server's database (see openDrivers).
 */
export async function openStores(config: Config, log: Logger, command = 'serve'): Promise<OpenedStores> {
  const masterKey = loadMasterKey(config);
  log.info(
    { database: config.database_url ? 'postgres' : 'embedded', data_dir: config.data_dir },
    'opening stores',
  );
  const drivers = await openDrivers(config, deriveKey(masterKey, 'object-urls'), {
    command,
    log: (message) => log.info(message),
  });
  try {
    const applied = await migrate(drivers.db.db, (message) => log.info(message));
    log.info({ applied: applied.length }, applied.length > 0 ? 'migrations applied' : 'schema up to date');
  } catch (err) {
    await closeDrivers(drivers);
    throw err;
  }
  return { drivers, masterKey };
}

/** `platform serve`: stores, migrations, bootstrap admin, HTTP server, background loops, signals. */
export async function serve(config: Config): Promise<Platform> {
  const log = createLogger(config, logDestination(config));
  const { drivers } = await openStores(config, log);
  let platform: Platform;
  let running: { release(): Promise<void> } | undefined;
  try {
    // Before buildApp loads the master key: a key rotation in progress finishes first (core/running.ts).
    running = await holdServerRunningLock(drivers.db.db, {
      onLost: (err) =>
        log.warn({ err }, 'lost the server-running lock with its database connection; taking it again'),
      onRetaken: () => log.info('server-running lock held again'),
    });
    const admin = await bootstrapAdmin(drivers.db.db, {
      name: config.admin_name,
      email: config.admin_email,
      password: config.admin_password,
    });
    if (admin.created && admin.generatedPassword) {
      // Printed once, to the terminal, never logged: it is not in the log stream.
      process.stdout.write(
        `\n  Bootstrap admin created.\n    user:     ${admin.name}\n    password: ${admin.generatedPassword}\n  (shown once; change it with \`platform admin reset-password ${admin.name}\`)\n\n`,
      );
    } else if (admin.created) {
      log.info({ admin: admin.name }, 'bootstrap admin created with PLATFORM_ADMIN_PASSWORD');
    }
    platform = await buildApp(config, drivers, { logger: log });
    await platform.fastify.listen({ host: config.host, port: config.port });
  } catch (err) {
    await running?.release();
    await closeDrivers(drivers);
    throw err;
  }
  const runningLock = running;
  platform.startBackground();
  log.info({ url: config.public_url }, `platform listening on ${config.host}:${config.port}`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: draining requests and stopping background loops');
    const force = setTimeout(() => {
      log.error('shutdown took over 30 s; exiting');
      process.exit(1);
    }, 30_000);
    force.unref();
    try {
      await platform.close();
      await runningLock.release();
      await closeDrivers(drivers);
      log.info('shutdown complete');
      log.flush?.();
      process.exit(0);
    } catch (err) {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  return platform;
}
