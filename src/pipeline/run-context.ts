import type { Logger } from 'pino';
import type { EventBus } from '../core/events.js';
import type { LogSink } from '../core/log-sink.js';
import type { ProjectRow, ProjectsService } from '../projects/index.js';
import type { RepoSource, Runner, Workspace } from '../runners/types.js';
import type { SecretsService } from '../secrets/index.js';
import type { Db } from '../store/db.js';
import type { ObjectStore } from '../store/objects/types.js';
import type { PubSub } from '../store/pubsub/types.js';
import type { PipelineRow } from '../store/schema.js';
import type { OutputMasker, StepLogWriter } from './logs.js';
import type { StepRowWrites } from './step-writes.js';

export interface ExecutorOptions {
  /** Pipelines this instance runs at once. */
  concurrency: number;
  leaseSeconds: number;
  /** Running logs and artifact staging (the runner has its own work root). */
  stateDir: string;
  registry: string;
  artifactExpirySeconds: number;
  publicUrl: string;
}

export interface ExecutorDeps {
  db: Db;
  pubsub: PubSub;
  objects: ObjectStore;
  events: EventBus;
  log: Logger;
  runner: Runner;
  secrets: SecretsService;
  projects: ProjectsService;
  instanceId: string;
  options: ExecutorOptions;
  createMasker(secrets: string[]): OutputMasker;
  /** Step output as log entries (service `pipeline`) in the observability store, when composed. */
  logs?: LogSink;
  /** A read token for remote clones (kubernetes), revoked when the run ends; undefined when the runner clones locally. */
  cloneToken?(
    pipeline: PipelineRow,
    project: ProjectRow,
  ): Promise<{ token: string; revoke(): Promise<void> } | undefined>;
}

export type AbortReason = 'cancel' | 'shutdown' | 'lost';

/** A pipeline this instance runs. */
export interface RunningPipeline {
  id: string;
  abort: AbortController;
  reason: AbortReason | null;
  writers: Map<string, StepLogWriter>;
  done: Promise<void>;
}

/** An artifact uploaded during the run; its row is written when the pipeline finishes. */
export interface PendingArtifact {
  name: string;
  stepId: string | null;
  key: string;
  size: number;
  sha256: string;
  contentType: string;
  expiresAt: Date | null;
}

/** What a successful `publish` step staged for the deployer (recorded when the pipeline succeeds). */
export interface StagedPublication {
  stepId: string;
  environment: string;
  imageRef: string | null;
  artifactName: string | null;
}

export interface RunContext {
  row: PipelineRow;
  project: ProjectRow;
  workspace: Workspace;
  source: RepoSource;
  running: RunningPipeline;
  logDir: string;
  artifacts: PendingArtifact[];
  publications: StagedPublication[];
  artifactNames: Set<string>;
  /** Step logs being stored; awaited before the pipeline finishes. */
  logUploads: Promise<void>[];
  /** Step-row writes, applied in order off the steps' critical path; drained before the pipeline finishes. */
  stepWrites: StepRowWrites;
}

/** A run before (or without) its workspace: what finishing needs. */
export type FinishingRun = Omit<RunContext, 'workspace'> & { workspace: Workspace | null };
