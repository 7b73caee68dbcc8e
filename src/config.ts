import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';

/**
 * Every setting, its environment variable, its CLI flag and its meaning. Environment variables are
 * `PLATFORM_<SNAKE_CASE>`, config-file keys are the snake_case names, CLI flags `--kebab-case`.
 * The README's configuration table is generated from the same descriptions (`platform config`).
 */
const bool = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])])
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const optionalString = z.string().min(1).optional();
const commaList = z
  .string()
  .default('')
  .transform((s) =>
    s
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean),
  );

const settings = {
  env: {
    schema: z.enum(['development', 'production', 'test']).default('development'),
    help: '`development`, `production` (refuses unsafe defaults) or `test`',
  },
  host: { schema: z.string().min(1).default('0.0.0.0'), help: 'listen address' },
  port: { schema: int(0, 65535).default(8080), help: 'listen port' },
  public_url: {
    schema: z.url().optional(),
    help: 'URL clients use to reach the platform (clone URLs, presigned links); default `http://localhost:<port>`',
  },
  data_dir: {
    schema: z.string().min(1).default('./data'),
    help: 'data directory (embedded PostgreSQL, objects, repos, keys)',
  },
  database_url: {
    schema: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
      .optional(),
    help: 'PostgreSQL URL; absent → the embedded PostgreSQL server in `<data_dir>/postgres`',
  },
  database_pool_size: { schema: int(1, 500).default(10), help: 'PostgreSQL pool size' },
  valkey_url: {
    schema: z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .optional(),
    help: 'Valkey/Redis URL for cache and pub/sub; absent → in-process',
  },
  valkey_key_prefix: {
    schema: z.string().default('platform:'),
    help: 'prefix of every Valkey key and channel',
  },
  s3_endpoint: { schema: z.url().optional(), help: 'S3 endpoint (MinIO etc.); absent with a bucket → AWS' },
  s3_bucket: {
    schema: optionalString,
    help: 'S3 bucket; absent → objects stored under `<data_dir>/objects`',
  },
  s3_region: { schema: z.string().min(1).default('us-east-1'), help: 'S3 region' },
  s3_access_key_id: { schema: optionalString, help: 'S3 access key id' },
  s3_secret_access_key: { schema: optionalString, help: 'S3 secret access key', secret: true },
  s3_force_path_style: { schema: bool.default(false), help: 'path-style S3 URLs (MinIO)' },
  executor: { schema: z.enum(['local', 'kubernetes']).default('local'), help: 'where steps and agents run' },
  kubeconfig: { schema: optionalString, help: 'kubeconfig path; absent → in-cluster config' },
  k8s_namespace: { schema: z.string().min(1).default('platform'), help: 'Kubernetes namespace for pods' },
  k8s_step_cpu: {
    schema: z.string().min(1).default('1'),
    help: 'CPU limit of a pipeline step pod (Kubernetes quantity)',
  },
  k8s_step_memory: {
    schema: z.string().min(1).default('1Gi'),
    help: 'memory limit of a pipeline step pod (Kubernetes quantity)',
  },
  runner_bwrap: {
    schema: z.enum(['auto', 'never', 'required']).default('auto'),
    help: 'local steps in the bubblewrap sandbox: `auto` (when installed; as root: always, or steps are refused), `required`, or `never` (unsandboxed; refused as root)',
  },
  runner_uid: {
    schema: int(1, 4_294_967_294).default(65532),
    help: 'host uid and gid that local step sandboxes run as when the platform runs as root (needs no passwd entry)',
  },
  runner_readonly_paths: {
    schema: commaList,
    help: 'extra host paths local steps see read-only, comma-separated (toolchains outside /usr, /opt and /etc)',
  },
  pipeline_concurrency: {
    schema: int(1, 1000).default(4),
    help: 'pipelines one instance runs at once',
  },
  pipeline_workspace_dir: {
    schema: optionalString,
    help: 'where local pipeline workspaces and running logs live; default `<data_dir>/workspaces`',
  },
  pipeline_lease_seconds: {
    schema: int(5, 3600).default(30),
    help: 'lease of a running pipeline, renewed while it runs; an expired one is failed as interrupted',
  },
  pipeline_registry: {
    schema: z.string().default(''),
    help: 'container registry given to steps as `$REGISTRY`',
  },
  artifact_expiry_default: {
    schema: z
      .string()
      .regex(/^(\d+[dhms])+$/, 'a duration such as 30d, 12h, 90m or 1h30m')
      .default('30d'),
    help: 'how long artifacts are kept when the definition gives no `expires`',
  },
  master_key: {
    schema: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 32 bytes as 64 hex characters')
      .optional(),
    help: 'secrets master key (64 hex chars); absent → generated once in `<data_dir>/master.key` (not in production)',
    secret: true,
  },
  smtp_host: { schema: optionalString, help: 'SMTP server; absent → email notifications disabled' },
  smtp_port: { schema: int(1, 65535).default(587), help: 'SMTP port' },
  smtp_security: {
    schema: z.enum(['starttls', 'tls', 'none']).default('starttls'),
    help: '`starttls`, `tls` (implicit) or `none`',
  },
  smtp_user: { schema: optionalString, help: 'SMTP user' },
  smtp_password: { schema: optionalString, help: 'SMTP password', secret: true },
  smtp_from: { schema: z.string().min(3).default('platform@localhost'), help: 'sender address' },
  admin_name: { schema: z.string().min(1).default('admin'), help: 'bootstrap admin user name' },
  admin_email: { schema: z.email().default('admin@localhost.localdomain'), help: 'bootstrap admin email' },
  admin_password: {
    schema: z.string().min(8, 'must be at least 8 characters').optional(),
    help: 'bootstrap admin password; absent → generated and printed once',
    secret: true,
  },
  session_ttl_seconds: { schema: int(60, 31_536_000).default(604_800), help: 'login session lifetime' },
  secure_cookies: {
    schema: bool.optional(),
    help: 'mark cookies Secure; default: true when public_url is https',
  },
  cors_origins: {
    schema: commaList,
    help: 'comma-separated origins allowed by CORS',
  },
  outbound_allow_list: {
    schema: commaList,
    help: 'comma-separated hosts, IPs or CIDRs that outbound webhooks may reach although private (on-premises targets)',
  },
  trust_proxy: {
    schema: bool.default(false),
    help: 'trust X-Forwarded-* from a reverse proxy (client IPs in audit rows and rate limits)',
  },
  body_limit_bytes: { schema: int(1024, 1 << 30).default(10 * 1024 * 1024), help: 'API request body limit' },
  git_body_limit_bytes: {
    schema: int(1024, Number.MAX_SAFE_INTEGER).default(5 * 1024 * 1024 * 1024),
    help: 'git/LFS request body limit',
  },
  permission_cache_ttl_seconds: {
    schema: int(0, 86_400).default(300),
    help: 'permission resolution cache TTL',
  },
  login_rate_limit: {
    schema: int(1, 100_000).default(10),
    help: 'failed logins per IP and per user name within the window before 429',
  },
  login_rate_window_seconds: { schema: int(1, 86_400).default(900), help: 'window of the login rate limit' },
  log_level: {
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    help: 'log level',
  },
  log_format: {
    schema: z.enum(['auto', 'json', 'pretty']).default('auto'),
    help: '`auto`: human-readable on a terminal, JSON lines otherwise; or always `json` / `pretty`',
  },
  dev: { schema: bool.default(false), help: 'development conveniences (pretty logs)' },
} as const;

type Settings = typeof settings;
export type SettingName = keyof Settings;
type RawConfig = { [K in SettingName]: z.output<Settings[K]['schema']> };

export interface Config extends Omit<RawConfig, 'public_url' | 'secure_cookies'> {
  public_url: string;
  secure_cookies: boolean;
  /** Absolute data directory. */
  data_dir: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export const settingNames = Object.keys(settings) as SettingName[];
export const envName = (name: SettingName) => `PLATFORM_${name.toUpperCase()}`;
const flagName = (name: SettingName) => `--${name.replaceAll('_', '-')}`;

/** Environment variables that belong to tooling, not to the server config. */
const nonConfigEnv = /^PLATFORM_TEST_/;

export interface ConfigSources {
  env?: NodeJS.ProcessEnv;
  /** Path of a YAML/JSON config file (`--config`). */
  file?: string;
  /** Already-parsed CLI overrides: `{ port: '9000' }` (flag names with dashes or underscores). */
  flags?: Record<string, string | boolean>;
}

/**
 * Merges file < environment < flags, validates, and names every bad setting by where it came from
 * (`PLATFORM_PORT: expected a number …`). Throws ConfigError listing all problems.
 */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env;
  const problems: string[] = [];
  const raw: Record<string, { value: unknown; origin: string }> = {};

  if (sources.file) {
    let parsed: unknown;
    try {
      parsed = YAML.parse(readFileSync(sources.file, 'utf8'));
    } catch (err) {
      throw new ConfigError([`config file ${sources.file}: ${(err as Error).message}`]);
    }
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
      for (const [key, value] of Object.entries(parsed)) {
        if (!(key in settings)) problems.push(`config file ${sources.file}: unknown setting "${key}"`);
        else
          raw[key] = {
            value: typeof value === 'number' ? String(value) : value,
            origin: `${sources.file}: ${key}`,
          };
      }
    } else if (parsed != null) {
      problems.push(`config file ${sources.file}: must be a mapping of setting names to values`);
    }
  }

  for (const [key, value] of Object.entries(env)) {
    if (!key.startsWith('PLATFORM_') || nonConfigEnv.test(key) || value === undefined) continue;
    const name = key.slice('PLATFORM_'.length).toLowerCase();
    if (!(name in settings)) {
      problems.push(`${key}: unknown setting (known: ${settingNames.map(envName).join(', ')})`);
      continue;
    }
    if (value === '') continue;
    raw[name] = { value, origin: key };
  }

  for (const [flag, value] of Object.entries(sources.flags ?? {})) {
    const name = flag.replace(/^--/, '').replaceAll('-', '_');
    if (!(name in settings)) {
      problems.push(`--${flag}: unknown option`);
      continue;
    }
    raw[name] = { value, origin: flagName(name as SettingName) };
  }

  const out: Record<string, unknown> = {};
  for (const name of settingNames) {
    const entry = raw[name];
    const result = settings[name].schema.safeParse(entry?.value);
    if (result.success) out[name] = result.data;
    else {
      const origin = entry?.origin ?? envName(name);
      const message = result.error.issues.map((i) => i.message).join('; ');
      problems.push(`${origin}: ${message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const cfg = out as RawConfig;
  const publicUrl = (cfg.public_url ?? `http://localhost:${cfg.port}`).replace(/\/+$/, '');
  const config: Config = {
    ...cfg,
    data_dir: path.resolve(cfg.data_dir),
    public_url: publicUrl,
    secure_cookies: cfg.secure_cookies ?? publicUrl.startsWith('https://'),
  };

  if (config.env === 'production') {
    const required: SettingName[] = ['master_key', 'database_url', 'admin_password'];
    const missing = required.filter((n) => config[n] === undefined);
    if (missing.length > 0) {
      throw new ConfigError(
        missing.map(
          (n) => `${envName(n)}: required when PLATFORM_ENV=production (no generated defaults in production)`,
        ),
      );
    }
  }
  return config;
}

/** Markdown table of every setting (used to keep the README's table true). */
export function configTable(): string {
  const rows = settingNames.map((name) => {
    const s = settings[name];
    const parsed = s.schema.safeParse(undefined);
    const def = parsed.success && parsed.data !== undefined ? `\`${JSON.stringify(parsed.data)}\`` : '—';
    return `| \`${envName(name)}\` | \`${flagName(name)}\` | ${def} | ${s.help} |`;
  });
  return ['| variable | flag | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

/** Names of settings whose values must never be printed. */
export const secretSettings = settingNames.filter(
  (n) => 'secret' in settings[n] && settings[n].secret === true,
);
