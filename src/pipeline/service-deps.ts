import type { Logger } from 'pino';
import type { EventBus } from '../core/events.js';
import type { ProjectsService } from '../projects/index.js';
import type { Db } from '../store/db.js';
import type { ObjectStore } from '../store/objects/types.js';
import type { PubSub } from '../store/pubsub/types.js';

export interface PipelineServiceDeps {
  db: Db;
  projects: ProjectsService;
  events: EventBus;
  pubsub: PubSub;
  objects: ObjectStore;
  log: Logger;
  /** Called after a pipeline was queued: wakes the executor on this instance (and others). */
  onQueued(): void;
}
