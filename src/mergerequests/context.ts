import type { Logger } from 'pino';
import type { EventBus } from '../core/events.js';
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
