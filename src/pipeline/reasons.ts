import { declareReasons } from '../core/errors.js';

/** The pipeline module's stable refusal reasons (`error.reason`). */
export const PIPELINE_REASONS = declareReasons('pipeline', {
  notCancellable: ['pipeline.not_cancellable', 'the pipeline already finished (details carry its status)'],
  notRetryable: [
    'pipeline.not_retryable',
    'only a finished pipeline can be retried (details carry its status)',
  ],
  noDefinition: ['pipeline.no_definition', 'the commit has no .platform.yaml, so there is nothing to run'],
  apiDisabled: ['pipeline.api_disabled', 'the definition does not allow api triggers (on.api: false)'],
  unknownRef: ['pipeline.unknown_ref', 'git_ref is not a branch or tag of the project'],
  injectedVariable: ['pipeline.injected_variable', 'a variable would override one the platform injects'],
});
