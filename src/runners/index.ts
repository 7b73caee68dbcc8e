export {
  createProcessLauncher,
  LAUNCHER_DIED,
  type LaunchedProcess,
  LauncherDiedError,
  type LauncherMode,
  type LaunchOptions,
  type ProcessExit,
  type ProcessLauncher,
  sharedProcessLauncher,
} from '../core/launcher.js';
export { createKubernetesRunner, type KubernetesRunnerOptions } from './kubernetes.js';
export { createLocalRunner, DEFAULT_SANDBOX_USER, type LocalRunnerOptions } from './local.js';
export { createMasker, type Masker } from './mask.js';
export { killGroup, killRecordedGroup, parsePidFile, writePidFile } from './process-group.js';
export {
  bwrapArgs,
  DEFAULT_PATH,
  findOnPath,
  probeBwrap,
  reachableWorkRoot,
  type SandboxView,
  untraversableAncestor,
} from './sandbox.js';
export type {
  RepoSource,
  Runner,
  StepOutcome,
  StepRunRequest,
  StepRunResult,
  Workspace,
} from './types.js';
