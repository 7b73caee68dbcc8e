import { declareReasons } from '../core/errors.js';

export const DEPLOY_REASONS = declareReasons('deploy', {
  notFound: ['deploy.not_found', 'the project has no deployment for this environment'],
  stateConflict: [
    'deploy.state_conflict',
    'the deployment is in a state that does not allow this change (it changed meanwhile); the answer carries the current state',
  ],
  noPreviousVersion: ['deploy.no_previous_version', 'there is no earlier successful version to roll back to'],
  historyNotFound: [
    'deploy.history_not_found',
    'the history entry does not exist or belongs to another deployment',
  ],
  artifactNotFound: ['deploy.artifact_not_found', 'the artifact does not exist in this project'],
  opsRepoNotFound: ['deploy.ops_repo_not_found', 'no ops repository with this id'],
  opsRepoExists: ['deploy.ops_repo_exists', 'an ops repository with this name exists'],
  opsRepoUrlRefused: [
    'deploy.ops_repo_url_refused',
    'the ops repository URL is neither a project on this platform nor an allowed external http(s) URL without credentials',
  ],
  syncFailed: ['deploy.sync_failed', 'the ops repository could not be fetched'],
  renderFailed: [
    'deploy.render_failed',
    'the manifests could not be read or rendered (file and variable named)',
  ],
});
