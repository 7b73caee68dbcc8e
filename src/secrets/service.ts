import { writeAudit } from '../core/audit.js';
import { AppError, notFound } from '../core/errors.js';
import type { Actor } from '../core/http.js';
import { decodeCursor, type Page, toPage } from '../core/pagination.js';
import type { Db, DbOrTx, Tx } from '../store/db.js';
import type { SecretsTable } from '../store/schema.js';
import { open, SEAL_FORMAT_VERSION, seal, secretAad, secretsKey } from './crypto.js';
import { SECRETS_REASONS } from './reasons.js';
import {
  MAX_SECRET_VALUE_BYTES,
  type PutSecretInput,
  SECRET_NAME,
  type SecretConsumer,
  type SecretMetadata,
  type SecretScope,
} from './types.js';

/**
 * `${{ secrets.NAME }}` exactly: one space after `${{` and before `}}`. Other spellings
 * (`${{secrets.NAME}}`, extra spaces) are not placeholders and stay as they are.
 */
const PLACEHOLDER = /\$\{\{ secrets\.([A-Za-z_][A-Za-z0-9_]{0,254}) \}\}/g;

/** A secret a consumer asked for does not exist, or not for its scope. Names the secrets, not values. */
export class SecretResolutionError extends AppError {
  constructor(
    readonly missing: string[],
    scope: SecretScope,
  ) {
    super(
      422,
      'unprocessable',
      `secret${missing.length > 1 ? 's' : ''} ${missing.map((n) => `"${n}"`).join(', ')} not defined for scope ${scope} (neither in the project nor globally)`,
      missing.map((name) => ({ message: 'secret not found', name })),
    );
    this.name = 'SecretResolutionError';
    this.because(SECRETS_REASONS.notDefined);
  }
}

export class SecretValueTooLargeError extends AppError {
  constructor(bytes: number) {
    super(
      413,
      'payload_too_large',
      `secret value is ${bytes} bytes; the limit is ${MAX_SECRET_VALUE_BYTES} bytes (64 KiB)`,
      [{ path: 'body.value', message: `at most ${MAX_SECRET_VALUE_BYTES} bytes` }],
    );
    this.name = 'SecretValueTooLargeError';
    this.because(SECRETS_REASONS.valueTooLarge);
  }
}

type SecretRow = Pick<SecretsTable, 'name' | 'project_id' | 'created_by' | 'updated_by'> & {
  scope: SecretScope;
  version: number;
  created_at: Date;
  updated_at: Date;
};

const METADATA_COLUMNS = [
  'name',
  'project_id',
  'scope',
  'version',
  'created_at',
  'updated_at',
  'created_by',
  'updated_by',
] as const;

function toMetadata(row: SecretRow): SecretMetadata {
  return {
    name: row.name,
    project_id: row.project_id,
    scope: row.scope,
    version: row.version,
    created_at: new Date(row.created_at).toISOString(),
    updated_at: new Date(row.updated_at).toISOString(),
    created_by: row.created_by,
    updated_by: row.updated_by,
  };
}

/** A secret of `secretScope` may be handed to a consumer of `requested` scope. */
export function scopeAllows(secretScope: SecretScope, requested: SecretScope): boolean {
  // Requested 'all' (a consumer that does not say what it is) gets only the secrets meant for everyone.
  return secretScope === 'all' || secretScope === requested;
}

function assertName(name: string): void {
  if (!SECRET_NAME.test(name)) {
    throw new AppError(400, 'bad_request', 'invalid secret name', [
      { path: 'name', message: 'letters, digits and "_", not starting with a digit, at most 255' },
    ]).because(SECRETS_REASONS.invalidName);
  }
}

export interface RotationProgress {
  done: number;
  total: number;
}

/** Opens a value sealed with the old key and seals it with the new one (same AAD). */
export type Rekey = (sealed: Uint8Array, aad: Buffer) => Buffer;

/**
 * Another module's encrypted column, re-encrypted in the rotation's transaction by the module that
 * owns the table (it knows each row's AAD). Returns how many values it re-encrypted.
 */
export interface SealedColumn {
  /** e.g. `webhooks.secret_ciphertext`: reported in the audit row and the CLI output. */
  name: string;
  reencrypt(trx: Tx, rekey: Rekey): Promise<number>;
}

/**
 * Secrets: sealed values per project or global (project_id null). Values go in through `put` and
 * come out only through `resolve`/`resolveTemplate` (internal, audited); everything else is metadata.
 */
export class SecretsService {
  private readonly key: Buffer;

  constructor(
    private readonly db: Db,
    masterKey: Buffer,
  ) {
    this.key = secretsKey(masterKey);
  }

  /** Create, or update (a new version) — `created` tells which. projectId null = global. */
  async put(
    actor: Actor,
    projectId: string | null,
    input: PutSecretInput,
  ): Promise<{ created: boolean; secret: SecretMetadata }> {
    assertName(input.name);
    const bytes = Buffer.byteLength(input.value, 'utf8');
    if (bytes > MAX_SECRET_VALUE_BYTES) throw new SecretValueTooLargeError(bytes);
    const ciphertext = seal(this.key, input.value, secretAad(projectId, input.name));
    return this.db.transaction().execute(async (trx) => {
      if (projectId) await this.assertProject(trx, projectId);
      const row = await trx
        .insertInto('secrets')
        .values({
          project_id: projectId,
          name: input.name,
          ciphertext,
          scope: input.scope ?? 'all',
          created_by: actor.id,
          updated_by: actor.id,
        })
        .onConflict((oc) => {
          const target = projectId
            ? oc.columns(['project_id', 'name'])
            : oc.column('name').where('project_id', 'is', null);
          return target.doUpdateSet((eb) => ({
            ciphertext: eb.ref('excluded.ciphertext'),
            version: eb(eb.ref('secrets.version'), '+', 1),
            updated_by: eb.ref('excluded.updated_by'),
            ...(input.scope ? { scope: eb.ref('excluded.scope') } : {}),
          }));
        })
        .returning(['id', ...METADATA_COLUMNS])
        .executeTakeFirstOrThrow();
      const created = row.version === 1;
      await writeAudit(trx, {
        actor,
        action: created ? 'secret.create' : 'secret.update',
        resourceType: 'secret',
        resourceId: row.id,
        projectId,
        detail: { name: row.name, scope: row.scope, version: row.version, global: projectId === null },
      });
      return { created, secret: toMetadata(row) };
    });
  }

  /** Metadata of the project's secrets (or the global ones), by name. */
  async list(
    projectId: string | null,
    page: { limit: number; cursor?: string | undefined },
  ): Promise<Page<SecretMetadata>> {
    if (projectId) await this.assertProject(this.db, projectId);
    let q = this.db
      .selectFrom('secrets')
      .select(METADATA_COLUMNS)
      .where('project_id', projectId ? '=' : 'is', projectId)
      .orderBy('name')
      .limit(page.limit + 1);
    if (page.cursor) {
      const [after] = decodeCursor(page.cursor, 1);
      q = q.where('name', '>', after!);
    }
    const rows = await q.execute();
    return toPage(rows, page.limit, (r) => [r.name], toMetadata);
  }

  async get(projectId: string | null, name: string): Promise<SecretMetadata> {
    const row = await this.db
      .selectFrom('secrets')
      .select(METADATA_COLUMNS)
      .where('project_id', projectId ? '=' : 'is', projectId)
      .where('name', '=', name)
      .executeTakeFirst();
    if (!row) throw notFound(`secret ${name}`);
    return toMetadata(row);
  }

  async delete(actor: Actor, projectId: string | null, name: string): Promise<void> {
    if (!SECRET_NAME.test(name)) throw notFound(`secret ${name}`);
    await this.db.transaction().execute(async (trx) => {
      if (projectId) await this.assertProject(trx, projectId);
      const row = await trx
        .deleteFrom('secrets')
        .where('project_id', projectId ? '=' : 'is', projectId)
        .where('name', '=', name)
        .returning(['id', 'name', 'scope'])
        .executeTakeFirst();
      if (!row) throw notFound(`secret ${name}`);
      await writeAudit(trx, {
        actor,
        action: 'secret.delete',
        resourceType: 'secret',
        resourceId: row.id,
        projectId,
        detail: { name: row.name, scope: row.scope, global: projectId === null },
      });
    });
  }

  /**
   * The value of a secret for a consumer of `scope`: the project's secret of that name, else the
   * global one. A project secret shadows the global one entirely: when its scope does not allow the
   * consumer, the global one is not used instead (no surprise fallback to another value).
   * Audited as `secret.resolve` (name and consumer, never the value).
   */
  async resolve(
    projectId: string | null,
    name: string,
    scope: SecretScope,
    consumer: SecretConsumer,
  ): Promise<string> {
    const values = await this.resolveMany(projectId, [name], scope, consumer);
    return values.get(name)!;
  }

  /** Replaces every `${{ secrets.NAME }}` (exactly that spelling) by the value; one audit row per name. */
  async resolveTemplate(
    projectId: string | null,
    scope: SecretScope,
    text: string,
    consumer: SecretConsumer,
  ): Promise<string> {
    const names = [...new Set(Array.from(text.matchAll(PLACEHOLDER), (m) => m[1]!))];
    if (names.length === 0) return text;
    const values = await this.resolveMany(projectId, names, scope, consumer);
    return text.replace(PLACEHOLDER, (_m, name: string) => values.get(name)!);
  }

  private async resolveMany(
    projectId: string | null,
    names: string[],
    scope: SecretScope,
    consumer: SecretConsumer,
  ): Promise<Map<string, string>> {
    for (const n of names) assertName(n);
    return this.db.transaction().execute(async (trx) => {
      let q = trx
        .selectFrom('secrets')
        .select(['id', 'project_id', 'name', 'scope', 'ciphertext'])
        .where('name', 'in', names);
      q = projectId
        ? q.where((eb) => eb.or([eb('project_id', '=', projectId), eb('project_id', 'is', null)]))
        : q.where('project_id', 'is', null);
      const rows = await q.execute();
      const chosen = new Map<string, (typeof rows)[number]>();
      for (const row of rows) {
        const current = chosen.get(row.name);
        // The project's row wins over the global one.
        if (!current || (current.project_id === null && row.project_id !== null)) chosen.set(row.name, row);
      }
      const missing = names.filter((n) => {
        const row = chosen.get(n);
        return !row || !scopeAllows(row.scope, scope);
      });
      if (missing.length > 0) throw new SecretResolutionError(missing, scope);
      const values = new Map<string, string>();
      const actor = consumer.actor ?? { id: null, name: `${consumer.kind}:${consumer.id}`, ip: null };
      for (const name of names) {
        const row = chosen.get(name)!;
        values.set(
          name,
          open(this.key, row.ciphertext, secretAad(row.project_id, row.name)).toString('utf8'),
        );
        await writeAudit(trx, {
          actor,
          action: 'secret.resolve',
          resourceType: 'secret',
          resourceId: row.id,
          projectId,
          detail: {
            name,
            scope,
            consumer: `${consumer.kind}:${consumer.id}`,
            global: row.project_id === null,
          },
        });
      }
      return values;
    });
  }

  private async assertProject(db: DbOrTx, projectId: string): Promise<void> {
    const p = await db.selectFrom('projects').select('id').where('id', '=', projectId).executeTakeFirst();
    if (!p) throw notFound('project');
  }
}

/**
 * Re-encrypts every secret, and every value of `columns`, from `oldMaster` to `newMaster` in ONE
 * transaction (all or nothing), rows locked so a concurrent writer waits. Writes one `secret.rotate_key` audit row. Returns the
 * number of secrets re-encrypted. Any row that does not open with the old key aborts everything.
 */
export async function rotateSecretsKey(
  db: Db,
  oldMaster: Buffer,
  newMaster: Buffer,
  options: {
    actor: Actor;
    batchSize?: number;
    onProgress?: (p: RotationProgress) => void;
    /** Every other encrypted column (project and notification webhook secrets): all in this transaction. */
    columns?: readonly SealedColumn[];
    /** Told how many values of each other column were re-encrypted. */
    onColumn?: (name: string, count: number) => void;
  },
): Promise<number> {
  const oldKey = secretsKey(oldMaster);
  const newKey = secretsKey(newMaster);
  const batchSize = options.batchSize ?? 200;
  return db.transaction().execute(async (trx: Tx) => {
    const { total } = await trx
      .selectFrom('secrets')
      .select((eb) => eb.fn.countAll<number>().as('total'))
      .executeTakeFirstOrThrow();
    const count = Number(total);
    options.onProgress?.({ done: 0, total: count });
    let done = 0;
    let after: string | null = null;
    for (;;) {
      let q = trx
        .selectFrom('secrets')
        .select(['id', 'project_id', 'name', 'ciphertext'])
        .orderBy('id')
        .limit(batchSize)
        .forUpdate();
      if (after) q = q.where('id', '>', after);
      const rows = await q.execute();
      if (rows.length === 0) break;
      for (const row of rows) {
        const aad = secretAad(row.project_id, row.name);
        const plaintext = open(oldKey, row.ciphertext, aad);
        await trx
          .updateTable('secrets')
          .set((eb) => ({
            ciphertext: seal(newKey, plaintext, aad),
            key_version: eb(eb.ref('key_version'), '+', 1),
          }))
          .where('id', '=', row.id)
          .execute();
        plaintext.fill(0);
      }
      done += rows.length;
      after = rows[rows.length - 1]!.id;
      options.onProgress?.({ done, total: count });
    }
    const rekey: Rekey = (sealed, aad) => {
      const plaintext = open(oldKey, sealed, aad);
      try {
        return seal(newKey, plaintext, aad);
      } finally {
        plaintext.fill(0);
      }
    };
    // Keyed by table: the audit writer drops keys that look like secrets ("secret_ciphertext").
    const tables: Record<string, number> = {};
    for (const column of options.columns ?? []) {
      const n = await column.reencrypt(trx, rekey);
      tables[column.name.split('.')[0]!] = n;
      options.onColumn?.(column.name, n);
    }
    await writeAudit(trx, {
      actor: options.actor,
      action: 'secret.rotate_key',
      resourceType: 'secret',
      detail: { count: done, format: SEAL_FORMAT_VERSION, tables },
    });
    return done;
  });
}
