import type { Logger } from 'pino';
import type { EventBus } from '../core/events.js';
import type { Permission } from '../core/permissions.js';
import type { ProjectsService } from '../projects/index.js';
import type { RbacService } from '../rbac/index.js';
import type { Db } from '../store/db.js';

/**
 * What merge requests need from the pipelines: the newest pipeline of a commit (the checks a
 * protected branch may require). Declared here and passed in by app.ts, so this module does not
 * read the pipeline module's tables.
 */
export interface CommitChecks {
  latestForCommit(projectId: string, sha: string): Promise<{ id: string; status: string } | null>;
  /**
   * Named checks other modules post on a merge request for its head (the deployer's `deploy/diff`);
   * a `failure` blocks the merge (`mr.check_failed`). Absent → none.
   */
  forMergeRequest?(
    mergeRequestId: string,
    headSha: string,
    viewer?: CheckViewer,
  ): Promise<MergeRequestCheck[]>;
}

/**
 * Who reads a check's text: a check may show another project's data (the deployer: the rendered
 * manifests of each environment the ops repo feeds) only to whom that project's permission allows.
 * Absent (the merge itself, which needs only the conclusions) → no such data in the text.
 */
export type CheckViewer = (permission: Permission, projectId: string) => Promise<boolean>;

/** A named check on a merge request's head. */
export interface MergeRequestCheck {
  name: string;
  conclusion: 'success' | 'neutral' | 'failure';
  summary: string;
  head_sha: string;
  /** Free text the check shows (the deployer: a unified diff per environment). */
  text: string;
  updated_at: string;
}

/** Everything the use cases of this module share; built once by the service. */
export interface MrContext {
  db: Db;
  projects: ProjectsService;
  rbac: RbacService;
  events: EventBus;
  log: Logger;
  checks: CommitChecks;
}
