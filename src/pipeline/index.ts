export { DefinitionError, parseDefinition } from './definition.js';
export type { ArtifactDefinition, PipelineDefinition, StepDefinition } from './definition-types.js';
export type { PipelineFinishedEvent } from './events.js';
export { PipelineExecutor } from './executor.js';
export { createPipelineModule, PIPELINE_LOOPS, type PipelineModuleOptions } from './module.js';
export { type CreateOutcome, PipelineService } from './service.js';
export {
  type ArtifactView,
  DEFINITION_FILE,
  INTERRUPTED_ERROR,
  type PipelineStatus,
  type PipelineStepStatus,
  type PipelineView,
  type StepView,
} from './types.js';
