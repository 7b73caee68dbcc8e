/**
 * The runner interface shared by the pipeline engine and (later) agent sessions: run one step's
 * commands somewhere — a child process on this machine (`local`) or a pod (`kubernetes`).
 */

/** Where the repository is, so a runner can put a checkout of `sha` in front of the commands. */
export interface RepoSource {
  /** Bare repository on this machine (the local runner clones from it). */
  repoDir: string;
  /** HTTP clone URL for remote runners (the kubernetes init container clones from it). */
  cloneUrl: string;
  /** Bearer token the remote clone authenticates with (sent as a header, never put in the URL). */
  cloneToken?: string;
  sha: string;
}

/** A prepared checkout shared by the steps of one pipeline run. */
export interface Workspace {
  /** Directory holding the checkout (local runner); the kubernetes runner clones per pod instead. */
  dir: string;
  /** Removes everything the workspace holds. Idempotent. */
  dispose(): Promise<void>;
}

export interface StepRunRequest {
  /** Unique per execution (pipeline id + step name); used in pod names, labels and process titles. */
  runId: string;
  pipelineId: string;
  stepName: string;
  /** Container image; the local runner only notes it in the output. */
  image: string | null;
  /** Run as `/bin/sh -c` with `set -e`, in order, in the workspace root. */
  commands: string[];
  /** The complete environment of the step (the runner adds nothing but PATH/HOME basics). */
  env: Record<string, string>;
  /** null = no limit. */
  timeoutSeconds: number | null;
  /** `none`: no network but loopback (own network namespace); default `host`. */
  network?: 'host' | 'none';
  workspace: Workspace;
  source: RepoSource;
  /** Extra labels (kubernetes) — e.g. platform.io/project. */
  labels?: Record<string, string>;
  /** Aborting cancels the step: processes/pods are killed within seconds. */
  signal: AbortSignal;
  /** Raw output (stdout and stderr interleaved, in arrival order). */
  onOutput(chunk: Buffer): void;
}

export type StepOutcome = 'success' | 'failure' | 'timeout' | 'cancelled';

export interface StepRunResult {
  outcome: StepOutcome;
  /** Process or container exit code when there was one. */
  exitCode: number | null;
  /** Why, when it did not succeed for a reason other than a non-zero exit (timeout, pod failed to start…). */
  error?: string;
  durationMs: number;
}

export interface Runner {
  readonly kind: 'local' | 'kubernetes';
  /** Prepares the workspace for a pipeline run (local: clone of source.repoDir checked out at sha). */
  prepareWorkspace(pipelineId: string, source: RepoSource): Promise<Workspace>;
  runStep(request: StepRunRequest): Promise<StepRunResult>;
  /**
   * Kills whatever a previous process left behind for these pipeline ids (start-up recovery after a
   * crash): local — process groups recorded in the workspace; kubernetes — pods labelled with them.
   */
  cleanupOrphans(pipelineIds: string[]): Promise<void>;
}
