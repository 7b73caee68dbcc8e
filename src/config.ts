import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';

/**
 * Every setting, its environment variable, its CLI flag and its meaning. Environment variables are
 * `PLATFORM_<SNAKE_CASE>`, config-file keys are the snake_case names, CLI flags `--kebab-case`.
 * The README's configuration table is generated from the same descriptions
 * (`platform config --reference`). Each schema says what it expects in words: a config error quotes
 * that and the value it got (`PLATFORM_PORT: expected a port number 1–65535, got 'abc'`).
 */
const bool = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])], {
    error: 'expected true or false (or 1/0, yes/no)',
  })
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number, what = 'a whole number') => {
  const error = `expected ${what} ${min}–${max}`;
  return z.coerce.number({ error }).int({ error }).min(min, { error }).max(max, { error });
};
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `expected one of ${values.join(', ')}` });
const url = () => z.url({ error: 'expected a URL such as https://forge.example.com' });
const optionalString = z.string().min(1).optional();
const hostPortError = 'expected host:port such as 0.0.0.0:4317 (port 0–65535)';
const hostPort = z
  .string()
  .regex(/^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/, { error: hostPortError })
  .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, { error: hostPortError });
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
    schema: oneOf(['development', 'production', 'test']).default('development'),
    help: '`development`, `production` (refuses unsafe defaults) or `test`',
  },
  host: { schema: z.string().min(1).default('0.0.0.0'), help: 'listen address' },
  port: { schema: int(1, 65535, 'a port number').default(8080), help: 'listen port' },
  instance_address: {
    schema: z
      .string()
      .regex(/^[A-Za-z0-9.:-]+$/, 'a host name or IP address')
      .max(253)
      .default('127.0.0.1'),
    help: "address other instances reach this instance's locally deployed apps at (`/apps/…` served by any instance); 127.0.0.1 when all share one host",
  },
  public_url: {
    schema: url().optional(),
    help: 'URL clients use to reach the platform (clone URLs, presigned links); default `http://localhost:<port>`',
  },
  data_dir: {
    schema: z.string().min(1).default('./data'),
    help: 'data directory (embedded PostgreSQL, objects, repos, keys)',
  },
  database_url: {
    schema: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL')
      .optional(),
    help: 'PostgreSQL URL; absent → the embedded PostgreSQL server in `<data_dir>/postgres`',
  },
  database_pool_size: { schema: int(1, 500).default(10), help: 'PostgreSQL pool size' },
  valkey_url: {
    schema: z
      .string()
      .regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL')
      .optional(),
    help: 'Valkey/Redis URL for cache and pub/sub; absent → in-process',
  },
  valkey_key_prefix: {
    schema: z.string().default('platform:'),
    help: 'prefix of every Valkey key and channel',
  },
  s3_endpoint: { schema: url().optional(), help: 'S3 endpoint (MinIO etc.); absent with a bucket → AWS' },
  s3_bucket: {
    schema: optionalString,
    help: 'S3 bucket; absent → objects stored under `<data_dir>/objects`',
  },
  s3_region: { schema: z.string().min(1).default('us-east-1'), help: 'S3 region' },
  s3_access_key_id: { schema: optionalString, help: 'S3 access key id' },
  s3_secret_access_key: { schema: optionalString, help: 'S3 secret access key', secret: true },
  s3_force_path_style: { schema: bool.default(false), help: 'path-style S3 URLs (MinIO)' },
  executor: { schema: oneOf(['local', 'kubernetes']).default('local'), help: 'where steps and agents run' },
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
    schema: oneOf(['auto', 'never', 'required']).default('auto'),
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
      .regex(/^(\d+[dhms])+$/, 'expected a duration such as 30d, 12h, 90m or 1h30m')
      .default('30d'),
    help: 'how long artifacts are kept when the definition gives no `expires`',
  },
  master_key: {
    schema: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'expected 32 bytes as 64 hex characters')
      .optional(),
    help: 'secrets master key (64 hex chars); absent → generated once in `<data_dir>/master.key` (not in production)',
    secret: true,
  },
  smtp_host: { schema: optionalString, help: 'SMTP server; absent → email notifications disabled' },
  smtp_port: { schema: int(1, 65535, 'a port number').default(587), help: 'SMTP port' },
  smtp_security: {
    schema: oneOf(['starttls', 'tls', 'none']).default('starttls'),
    help: '`starttls`, `tls` (implicit) or `none`',
  },
  smtp_user: { schema: optionalString, help: 'SMTP user' },
  smtp_password: { schema: optionalString, help: 'SMTP password', secret: true },
  smtp_from: { schema: z.string().min(3).default('platform@localhost'), help: 'sender address' },
  alert_evaluation_interval_seconds: {
    schema: int(1, 3600).default(20),
    help: 'how often alert rules are evaluated (by one instance at a time)',
  },
  admin_name: { schema: z.string().min(1).default('admin'), help: 'bootstrap admin user name' },
  admin_email: {
    schema: z.email({ error: 'expected an email address' }).default('admin@localhost.localdomain'),
    help: 'bootstrap admin email',
  },
  admin_password: {
    schema: z.string().min(8, 'expected at least 8 characters').optional(),
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
    schema: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    help: 'log level',
  },
  log_format: {
    schema: oneOf(['auto', 'json', 'pretty']).default('auto'),
    help: '`auto`: human-readable on a terminal, JSON lines otherwise; or always `json` / `pretty`',
  },
  observe_hot_hours: {
    schema: int(1, 24 * 365).default(48),
    help: 'hours of logs, spans and metric samples kept in PostgreSQL before they move to Parquet',
  },
  observe_cold_retention_days: {
    schema: int(1, 36_500).default(30),
    help: 'days Parquet (cold) telemetry files are kept',
  },
  observe_buffer_records: {
    schema: int(10, 10_000_000).default(100_000),
    help: 'telemetry records buffered per signal before ingest answers 429',
  },
  observe_flush_ms: {
    schema: int(1, 10_000).default(200),
    help: 'longest wait before buffered telemetry is written',
  },
  otlp_grpc_address: {
    schema: hostPort.optional(),
    help: 'listen address (`host:port`) of OTLP/gRPC ingest, e.g. `0.0.0.0:4317` (the standard OTLP/gRPC port); unset → no gRPC listener (OTLP/HTTP on `/v1/*` is always served)',
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
    super(
      `invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}\n` +
        'Fix the setting(s) above; `platform config` shows every setting, its value and where it came from.',
    );
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

/** Where a setting's value came from. */
export type SettingSource = 'default' | 'file' | 'environment' | 'flag';

/** One setting as `platform config` shows it. */
export interface SettingRow {
  name: SettingName;
  env: string;
  /** Printable value: secrets masked, unset → `—`. */
  value: string;
  source: SettingSource;
  /** `PLATFORM_PORT`, `--port`, `platform.yaml: port`, or what a derived default follows from. */
  origin: string;
  problem?: string;
}

export interface ConfigReport {
  rows: SettingRow[];
  /** Everything wrong, each naming where it came from (the ConfigError lines). */
  problems: string[];
  /** The validated configuration when there are no problems. */
  config?: Config;
}

/**
 * The closest of `candidates` to `word` (edit distance with transpositions, case-insensitive), when
 * close enough to be the likely typo: at most 2 edits, and fewer than half the word's length.
 */
export function closestName(word: string, candidates: readonly string[]): string | undefined {
  const a = word.toLowerCase();
  let best: { name: string; distance: number } | undefined;
  for (const name of candidates) {
    const b = name.toLowerCase();
    const d = Array.from({ length: a.length + 1 }, (_, i) =>
      Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
    );
    for (let i = 1; i <= a.length; i++) {
      for (let j = 1; j <= b.length; j++) {
        const cost = a[i - 1] === b[j - 1] ? 0 : 1;
        let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
        if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
          v = Math.min(v, d[i - 2]![j - 2]! + 1);
        d[i]![j] = v;
      }
    }
    const distance = d[a.length]![b.length]!;
    if (!best || distance < best.distance) best = { name, distance };
  }
  return best && best.distance <= 2 && best.distance < a.length / 2 ? best.name : undefined;
}

function unknownSetting(what: string, suggestion: string | undefined): string {
  return `${what}: unknown setting${suggestion ? `; did you mean ${suggestion}?` : ''} (\`platform config\` lists every setting)`;
}

/** A value as it appears in a message: quoted, shortened, never a secret. */
function quoted(name: SettingName, value: unknown): string {
  if (secretSettings.includes(name)) return `a value of ${String(value).length} characters (not shown)`;
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return `'${text.length > 80 ? `${text.slice(0, 77)}...` : text}'`;
}

/**
 * Merges file < environment < flags, validates, and reports every setting with its value and where
 * it came from; every bad setting is named by its origin and quotes what it got
 * (`PLATFORM_PORT: expected a port number 1–65535, got 'abc'`).
 */
export function inspectConfig(sources: ConfigSources = {}): ConfigReport {
  const env = sources.env ?? process.env;
  const problems: string[] = [];
  const raw: Record<string, { value: unknown; origin: string; source: SettingSource }> = {};

  if (sources.file) {
    let parsed: unknown;
    try {
      parsed = YAML.parse(readFileSync(sources.file, 'utf8'));
    } catch (err) {
      throw new ConfigError([`config file ${sources.file}: ${(err as Error).message}`]);
    }
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
      for (const [key, value] of Object.entries(parsed)) {
        if (!(key in settings))
          problems.push(
            unknownSetting(`config file ${sources.file}: "${key}"`, closestName(key, settingNames)),
          );
        else
          raw[key] = {
            value: typeof value === 'number' ? String(value) : value,
            origin: `${sources.file}: ${key}`,
            source: 'file',
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
      problems.push(unknownSetting(key, closestName(key, settingNames.map(envName))));
      continue;
    }
    if (value === '') continue;
    raw[name] = { value, origin: key, source: 'environment' };
  }

  for (const [flag, value] of Object.entries(sources.flags ?? {})) {
    const name = flag.replace(/^--/, '').replaceAll('-', '_');
    if (!(name in settings)) {
      const suggestion = closestName(name, settingNames);
      problems.push(
        `--${flag}: unknown option${suggestion ? `; did you mean ${flagName(suggestion as SettingName)}?` : ''} (\`platform --help\` lists the options)`,
      );
      continue;
    }
    raw[name] = { value, origin: flagName(name as SettingName), source: 'flag' };
  }

  const out: Record<string, unknown> = {};
  const rowProblems = new Map<SettingName, string>();
  for (const name of settingNames) {
    const entry = raw[name];
    const result = settings[name].schema.safeParse(entry?.value);
    if (result.success) out[name] = result.data;
    else {
      const origin = entry?.origin ?? envName(name);
      const message = [...new Set(result.error.issues.map((i) => i.message))].join('; ');
      const problem = `${origin}: ${message}${entry ? `, got ${quoted(name, entry.value)}` : ''}`;
      problems.push(problem);
      rowProblems.set(name, problem);
    }
  }

  const cfg = out as RawConfig;
  const port = typeof cfg.port === 'number' ? cfg.port : 8080;
  const publicUrl = (cfg.public_url ?? `http://localhost:${port}`).replace(/\/+$/, '');
  const derived: Partial<Record<SettingName, { value: unknown; origin: string }>> = {
    data_dir: { value: path.resolve(cfg.data_dir ?? './data'), origin: '' },
    public_url: { value: publicUrl, origin: raw.public_url ? '' : 'from PLATFORM_PORT' },
    secure_cookies: {
      value: cfg.secure_cookies ?? publicUrl.startsWith('https://'),
      origin: raw.secure_cookies ? '' : 'from PLATFORM_PUBLIC_URL',
    },
  };

  let config: Config | undefined;
  if (problems.length === 0) {
    config = {
      ...cfg,
      data_dir: derived.data_dir!.value as string,
      public_url: publicUrl,
      secure_cookies: derived.secure_cookies!.value as boolean,
    };
    if (config.env === 'production') {
      const required: SettingName[] = ['master_key', 'database_url', 'admin_password'];
      for (const n of required.filter((r) => config![r] === undefined)) {
        const problem = `${envName(n)}: required when PLATFORM_ENV=production (no generated defaults in production)`;
        problems.push(problem);
        rowProblems.set(n, problem);
      }
      if (problems.length > 0) config = undefined;
    }
  }

  const rows = settingNames.map((name): SettingRow => {
    const entry = raw[name];
    const value = derived[name]?.value ?? (name in out ? out[name] : entry?.value);
    const shown =
      value === undefined || (Array.isArray(value) && value.length === 0)
        ? '—'
        : value === ''
          ? '""'
          : secretSettings.includes(name)
            ? '******** (set)'
            : Array.isArray(value)
              ? value.join(',')
              : String(value);
    return {
      name,
      env: envName(name),
      value: shown,
      source: entry?.source ?? 'default',
      origin: entry?.origin ?? derived[name]?.origin ?? '',
      ...(rowProblems.has(name) ? { problem: rowProblems.get(name) } : {}),
    };
  });
  return { rows, problems, ...(config ? { config } : {}) };
}

/** The validated configuration; throws ConfigError listing every problem at once. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const report = inspectConfig(sources);
  if (!report.config) throw new ConfigError(report.problems);
  return report.config;
}

/** Markdown table of every setting and its default (the README's table: `platform config --reference`). */
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
export const secretSettings: SettingName[] = settingNames.filter(
  (n) => 'secret' in settings[n] && settings[n].secret === true,
);
