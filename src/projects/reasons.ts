import { declareReasons } from '../core/errors.js';

/** Why the projects module refuses: `error.reason` of its answers (see core/errors.ts). */
export const PROJECT_REASONS = declareReasons('project', {
  archived: ['project.archived', 'the project is archived (read-only); the details carry archived: true'],
  nameTaken: [
    'project.name_taken',
    'the owner already has a project of this name (names are unique ignoring case)',
  ],
  reservedName: [
    'project.reserved_name',
    'the name is a project sub-resource (issues, pipelines…), so /api/projects/:owner/:name could not address it',
  ],
  invalidBranchName: ['project.invalid_branch_name', 'default_branch is not a name git accepts for a branch'],
  patternTaken: [
    'project.protection_pattern_taken',
    'the project already has a protection rule with this pattern',
  ],
});
