import { z } from 'zod';
import { projectVisibilities } from '../store/schema.js';

/**
 * Request and response schemas of the projects routes. The service's views are derived from the
 * response schemas (`ViewOf`), so what the handlers return and what the API documents cannot drift.
 */

const timestamp = z.string().describe('ISO 8601');

/**
 * The service's view of a response body: the timestamps are Dates, which JSON serialisation turns
 * into the ISO strings the schema describes.
 */
export type ViewOf<T> = {
  [K in keyof T]: K extends `${string}_at` ? (null extends T[K] ? Date | null : Date) : T[K];
};

/**
 * Sub-resources of `/api/projects/:id/…`: a project with one of these names could not be addressed
 * as `/api/projects/:owner/:name` (the router prefers the static segment). The rest are kept for
 * modules to come. A test checks that every registered project sub-resource is in the list.
 */
export const RESERVED_PROJECT_NAMES: ReadonlySet<string> = new Set([
  'agent-settings',
  'alerts',
  'artifacts',
  'blob',
  'branches',
  'commits',
  'compare',
  'deployments',
  'environments',
  'issues',
  'members',
  'merge-requests',
  'pipelines',
  'protected-branches',
  'raw',
  'secrets',
  'sessions',
  'settings',
  'tags',
  'tree',
  'webhooks',
]);

/** Reserved ignoring case: lookups ignore case, so `Issues` would hide the sub-resource as well. */
export const isReservedProjectName = (name: string): boolean =>
  RESERVED_PROJECT_NAMES.has(name.toLowerCase());

/**
 * A project name: a URL path segment and a directory name. Case is kept as given; uniqueness and
 * lookups ignore it (`projects_owner_name_lower_key`). Reserved names are refused by the service,
 * with a reason.
 */
export const projectName = z
  .string()
  .min(1)
  .max(63)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/,
    'letters, digits, ".", "-" and "_", starting with a letter or digit, at most 63',
  )
  .refine((s) => !/\.git$/i.test(s) && !s.includes('..'), 'must not end in ".git" or contain ".."');

export const visibility = z.enum(projectVisibilities);
export type Visibility = z.infer<typeof visibility>;

export const createProjectBody = z.object({
  name: projectName,
  visibility: visibility.optional(),
  display_name: z.string().max(200).nullish(),
  description: z.string().max(5000).optional(),
  default_branch: z.string().min(1).max(255).optional(),
});
export type CreateProjectInput = z.output<typeof createProjectBody>;

export const updateProjectBody = z.object({
  name: projectName.optional(),
  display_name: z.string().max(200).nullish(),
  description: z.string().max(5000).optional(),
  visibility: visibility.optional(),
  default_branch: z.string().min(1).max(255).optional(),
});
export type UpdateProjectInput = z.output<typeof updateProjectBody>;

/** `owner` of a lookup by owner and name: a user name (any case). */
export const ownerAndName = z.object({ owner: z.string().min(1).max(63), name: z.string().min(1).max(200) });

export const ProjectSchema = z
  .object({
    id: z.uuid(),
    owner: z.string().describe('user name of the owner'),
    owner_id: z.uuid(),
    name: z.string(),
    full_name: z.string().describe('owner/name'),
    display_name: z.string().nullable(),
    description: z.string(),
    visibility,
    default_branch: z.string(),
    archived: z.boolean(),
    clone_url: z.string().describe('<public url>/<owner>/<name>.git'),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Project' });
export type ProjectView = ViewOf<z.output<typeof ProjectSchema>>;

export const ProjectListSchema = z
  .object({ items: z.array(ProjectSchema), next_cursor: z.string().nullable() })
  .meta({ id: 'ProjectList' });

export const protectionRuleBody = z.object({
  pattern: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[^\s]+$/, 'a branch name or glob without spaces'),
  allow_force_push: z.boolean().optional(),
  allow_deletion: z.boolean().optional(),
  required_approvals: z.number().int().min(0).max(100).optional(),
  require_pipeline: z.boolean().optional(),
  /** Users who may still push directly when the rule requires approvals or a pipeline. */
  allow_direct_push: z.array(z.uuid()).max(100).optional(),
});
export type ProtectionRuleInput = z.output<typeof protectionRuleBody>;

export const protectionRulePatch = protectionRuleBody
  .partial()
  .refine((b) => Object.keys(b).length > 0, 'nothing to change');

export const ProtectedBranchSchema = z
  .object({
    id: z.uuid(),
    project_id: z.uuid(),
    pattern: z.string().describe('branch name or glob, e.g. main, release/*'),
    allow_force_push: z.boolean(),
    allow_deletion: z.boolean(),
    required_approvals: z.number().int(),
    require_pipeline: z.boolean(),
    allow_direct_push: z.array(z.uuid()).describe('users who may push directly despite approvals/pipeline'),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'ProtectedBranch' });
export type ProtectedBranchView = ViewOf<z.output<typeof ProtectedBranchSchema>>;

export const ProtectedBranchListSchema = z
  .object({ items: z.array(ProtectedBranchSchema), next_cursor: z.null() })
  .meta({ id: 'ProtectedBranchList' });
