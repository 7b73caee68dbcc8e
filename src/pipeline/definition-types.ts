/** The parsed and validated `.platform.yaml` (see ../shared/spec/05-pipelines.md). */

export interface PublishSpec {
  /** Workspace path of the artifact to publish (exactly one of artifact / image). */
  artifact?: string;
  /** Image reference; `$VAR` references to injected variables are expanded at publish time. */
  image?: string;
  environment: string;
}

export interface StepDefinition {
  name: string;
  image: string | null;
  commands: string[];
  /** Values may contain `${{ secrets.NAME }}` placeholders, resolved at run time. */
  environment: Record<string, string>;
  depends_on: string[];
  timeout_seconds: number | null;
  /** Branch filter: the step runs only when the pipeline's branch matches one of the globs. */
  when: { branches: string[] } | null;
  allow_failure: boolean;
  publish: PublishSpec | null;
  /** `none`: the step gets its own network namespace with loopback only (local runner: a second sandbox). */
  network: 'host' | 'none';
}

export interface ArtifactDefinition {
  name: string;
  /** Relative to the workspace; a directory is uploaded as tar.gz. */
  path: string;
  /** null = the default expiry. */
  expires_seconds: number | null;
}

export type MrAction = 'opened' | 'synchronized' | 'reopened';

export interface PipelineDefinition {
  steps: StepDefinition[];
  artifacts: ArtifactDefinition[];
  on: {
    /** null = no push trigger. Absent `on` altogether means: push on every branch. */
    push: { branches: string[]; tags: string[] } | null;
    mr: { actions: MrAction[] } | null;
    schedule: string[];
    /** API trigger allowed (default true). */
    api: boolean;
  };
  concurrency: { group: string; cancel_in_progress: boolean } | null;
}
