import { writeAudit } from '../core/audit.js';
import { conflict, notFound } from '../core/errors.js';
import type { Actor } from '../core/http.js';
import type { Db, DbOrTx } from '../store/db.js';
import { isUniqueViolation } from './queries.js';
import { PROJECT_REASONS } from './reasons.js';
import type { ProtectedBranchView, ProtectionRuleInput } from './schemas.js';

/**
 * The rules of `protected_branches` as the API manages them (create, change, remove, list); what a
 * rule means is evaluated in protection.ts. Callers authorize (the project owner or an admin); every
 * change is one transaction with its audit row.
 */

function selectRules(db: DbOrTx, projectId: string) {
  return db.selectFrom('protected_branches').selectAll().where('project_id', '=', projectId);
}

function listRules(db: DbOrTx, projectId: string): Promise<ProtectedBranchView[]> {
  return selectRules(db, projectId).orderBy('pattern').execute();
}

function insertRule(trx: DbOrTx, projectId: string, input: ProtectionRuleInput) {
  return trx
    .insertInto('protected_branches')
    .values({ project_id: projectId, ...input })
    .returningAll()
    .executeTakeFirst();
}

function updateRule(trx: DbOrTx, projectId: string, ruleId: string, input: Partial<ProtectionRuleInput>) {
  return trx
    .updateTable('protected_branches')
    .set(input)
    .where('id', '=', ruleId)
    .where('project_id', '=', projectId)
    .returningAll()
    .executeTakeFirst();
}

function deleteRule(trx: DbOrTx, projectId: string, ruleId: string) {
  return trx
    .deleteFrom('protected_branches')
    .where('id', '=', ruleId)
    .where('project_id', '=', projectId)
    .returningAll()
    .executeTakeFirst();
}

const PATTERN_KEY = 'protected_branches_project_pattern_key';

export class ProtectionRulesService {
  constructor(private readonly db: Db) {}

  /** Every rule of the project, by pattern (a short list: not paginated). */
  list(projectId: string): Promise<ProtectedBranchView[]> {
    return listRules(this.db, projectId);
  }

  create(actor: Actor, projectId: string, input: ProtectionRuleInput): Promise<ProtectedBranchView> {
    return this.change(actor, projectId, 'protected_branch.create', { ...input }, (trx) =>
      insertRule(trx, projectId, input),
    );
  }

  update(
    actor: Actor,
    projectId: string,
    ruleId: string,
    input: Partial<ProtectionRuleInput>,
  ): Promise<ProtectedBranchView> {
    return this.change(actor, projectId, 'protected_branch.update', { ...input }, (trx) =>
      updateRule(trx, projectId, ruleId, input),
    );
  }

  async remove(actor: Actor, projectId: string, ruleId: string): Promise<void> {
    await this.change(actor, projectId, 'protected_branch.delete', {}, (trx) =>
      deleteRule(trx, projectId, ruleId),
    );
  }

  /** One audited transaction; an unknown rule is a 404, a second rule for a pattern a 409. */
  private async change(
    actor: Actor,
    projectId: string,
    action: string,
    detail: Record<string, unknown>,
    write: (trx: DbOrTx) => Promise<ProtectedBranchView | undefined>,
  ): Promise<ProtectedBranchView> {
    try {
      return await this.db.transaction().execute(async (trx) => {
        const row = await write(trx);
        if (!row) throw notFound('protection rule');
        await writeAudit(trx, {
          actor,
          action,
          resourceType: 'protected_branch',
          resourceId: row.id,
          projectId,
          detail: { pattern: row.pattern, ...detail },
        });
        return row;
      });
    } catch (err) {
      if (isUniqueViolation(err, PATTERN_KEY)) {
        throw conflict('the project already has a protection rule for this pattern', [
          { path: 'body.pattern', message: 'pattern taken', constraint: PATTERN_KEY },
        ]).because(PROJECT_REASONS.patternTaken);
      }
      throw err;
    }
  }
}
