import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Config } from '../config.js';
import { deriveKey, loadMasterKey } from '../core/keys.js';
import { Mailer } from '../notify/index.js';
import { createLocalRunner } from '../runners/index.js';
import { closeDrivers, openDrivers, pendingMigrations } from '../store/index.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

class SkipChecks extends Error {}

/** `platform doctor`: looks at every part the platform needs; false when a required one is missing. */
export async function doctor(config: Config): Promise<boolean> {
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
