/**
 * Which routes of the registry are MCP tools: a name, a toolset, a short description and how the
 * answer is bounded. Everything else — the input schema, access, validation, audit, errors — comes
 * from the route itself (catalog.ts), so a tool can never do what the caller's REST request could not.
 */

export const TOOLSETS = [
  'projects',
  'files',
  'issues',
  'merge_requests',
  'pipelines',
  'secrets',
  'notifications',
  'deployments',
  'observe',
  'sessions',
] as const;
export type Toolset = (typeof TOOLSETS)[number];

/** Enabled unless the caller names others: the loop of reading code, filing issues, MRs and CI. */
export const DEFAULT_TOOLSETS: readonly Toolset[] = [
  'projects',
  'files',
  'issues',
  'merge_requests',
  'pipelines',
];

/**
 * How a tool's answer is kept within the response budget:
 * - `list`: a `{items, next_cursor}` page; the page size shrinks until it fits, the cursor fetches the rest;
 * - `cut`: one string field (`field`) is cut, with `<field>_offset` to read on;
 * - `log`: a text/plain log route with `offset`; without one the tail is shown.
 */
export type Budget = { kind: 'list' } | { kind: 'cut'; field: string } | { kind: 'log' };

export interface ToolSpec {
  name: string;
  toolset: Toolset;
  description: string;
  /** The route, as registered: `METHOD url`. */
  route: string;
  budget?: Budget;
  /** Inputs fixed by the tool (issue_close: status closed); not part of its input schema. */
  fixed?: Record<string, unknown>;
  /**
   * Composite tools: another route is read first and its answer maps to this route's inputs
   * (mr_diff: the merge request's branches become the compare route's base and head).
   */
  prepare?: { route: string; args: string[]; map(first: Record<string, unknown>): Record<string, unknown> };
  /** Tools of modules that may not be on this server: skipped when the route is not registered. */
  optional?: boolean;
}

const P = '/api/projects/:id';

export const TOOL_SPECS: readonly ToolSpec[] = [
  {
    name: 'project_list',
    toolset: 'projects',
    description: 'List projects you can see.',
    route: 'GET /api/projects',
    budget: { kind: 'list' },
  },
  { name: 'project_get', toolset: 'projects', description: 'Get a project.', route: `GET ${P}` },
  {
    name: 'project_create',
    toolset: 'projects',
    description: 'Create a project (you own it).',
    route: 'POST /api/projects',
  },

  { name: 'file_tree', toolset: 'files', description: 'List a directory at a ref.', route: `GET ${P}/tree` },
  {
    name: 'file_read',
    toolset: 'files',
    description: 'Read a file at a ref.',
    route: `GET ${P}/blob`,
    budget: { kind: 'cut', field: 'content' },
  },
  { name: 'branch_list', toolset: 'files', description: 'List branches.', route: `GET ${P}/branches` },
  {
    name: 'commit_list',
    toolset: 'files',
    description: 'Commit history of a ref (or a path).',
    route: `GET ${P}/commits`,
    budget: { kind: 'list' },
  },

  {
    name: 'issue_list',
    toolset: 'issues',
    description: 'List issues (newest first).',
    route: `GET ${P}/issues`,
    budget: { kind: 'list' },
  },
  { name: 'issue_get', toolset: 'issues', description: 'Get an issue.', route: `GET ${P}/issues/:number` },
  { name: 'issue_create', toolset: 'issues', description: 'Open an issue.', route: `POST ${P}/issues` },
  {
    name: 'issue_comment',
    toolset: 'issues',
    description: 'Comment on an issue.',
    route: `POST ${P}/issues/:number/comments`,
  },
  {
    name: 'issue_close',
    toolset: 'issues',
    description: 'Close an issue.',
    route: `PATCH ${P}/issues/:number`,
    fixed: { status: 'closed' },
  },

  {
    name: 'mr_list',
    toolset: 'merge_requests',
    description: 'List merge requests.',
    route: `GET ${P}/merge-requests`,
    budget: { kind: 'list' },
  },
  {
    name: 'mr_get',
    toolset: 'merge_requests',
    description: 'Get a merge request: reviews, checks, mergeable and blockers.',
    route: `GET ${P}/merge-requests/:number`,
  },
  {
    name: 'mr_diff',
    toolset: 'merge_requests',
    description: 'The diff of a merge request (target…source).',
    route: `GET ${P}/compare`,
    budget: { kind: 'cut', field: 'patch' },
    prepare: {
      route: `GET ${P}/merge-requests/:number`,
      args: ['number'],
      map: (mr) => ({ base: mr.target_branch, head: mr.source_branch }),
    },
  },
  {
    name: 'mr_create',
    toolset: 'merge_requests',
    description: 'Open a merge request.',
    route: `POST ${P}/merge-requests`,
  },
  {
    name: 'mr_review',
    toolset: 'merge_requests',
    description: 'Approve, request changes or comment.',
    route: `POST ${P}/merge-requests/:number/reviews`,
  },
  {
    name: 'mr_comment',
    toolset: 'merge_requests',
    description: 'Comment on a merge request.',
    route: `POST ${P}/merge-requests/:number/comments`,
  },
  {
    name: 'mr_merge',
    toolset: 'merge_requests',
    description: 'Merge (refused with the first blocker).',
    route: `POST ${P}/merge-requests/:number/merge`,
  },

  {
    name: 'pipeline_run',
    toolset: 'pipelines',
    description: 'Run the pipeline of a branch or tag.',
    route: `POST ${P}/pipelines`,
  },
  {
    name: 'pipeline_list',
    toolset: 'pipelines',
    description: 'List pipelines (newest first).',
    route: `GET ${P}/pipelines`,
    budget: { kind: 'list' },
  },
  {
    name: 'pipeline_get',
    toolset: 'pipelines',
    description: 'Pipeline status with its steps.',
    route: `GET ${P}/pipelines/:pid`,
  },
  {
    name: 'pipeline_log',
    toolset: 'pipelines',
    description: 'A step log: the tail, or from offset.',
    route: `GET ${P}/pipelines/:pid/steps/:sid/logs`,
    budget: { kind: 'log' },
  },
  {
    name: 'pipeline_artifacts',
    toolset: 'pipelines',
    description: "A pipeline's artifacts.",
    route: `GET ${P}/pipelines/:pid/artifacts`,
  },

  {
    name: 'secret_list',
    toolset: 'secrets',
    description: 'Names and versions of project secrets (no values).',
    route: `GET ${P}/secrets`,
    budget: { kind: 'list' },
  },
  {
    name: 'secret_set',
    toolset: 'secrets',
    description: 'Create or update a project secret.',
    route: `POST ${P}/secrets`,
  },

  {
    name: 'deploy_list',
    toolset: 'deployments',
    description: "A project's environments: desired and current.",
    route: `GET ${P}/deployments`,
    optional: true,
  },
  {
    name: 'deploy_status',
    toolset: 'deployments',
    description: 'One environment: live status and recent history.',
    route: `GET ${P}/deployments/:env`,
    optional: true,
  },
  {
    name: 'deploy_diff',
    toolset: 'deployments',
    description: 'What the next apply would change.',
    route: `GET ${P}/deployments/:env/diff`,
    budget: { kind: 'cut', field: 'diff' },
    optional: true,
  },
  {
    name: 'deploy_promote',
    toolset: 'deployments',
    description: 'Set what should run (image_ref, artifact_id or commit_sha).',
    route: `PATCH ${P}/deployments/:env`,
    optional: true,
  },
  {
    name: 'deploy_rollback',
    toolset: 'deployments',
    description: 'Roll back to the previous good version.',
    route: `POST ${P}/deployments/:env/rollback`,
    optional: true,
  },
  {
    name: 'deploy_history',
    toolset: 'deployments',
    description: 'Deploys and rollbacks of an environment.',
    route: `GET ${P}/deployments/:env/history`,
    budget: { kind: 'list' },
    optional: true,
  },

  {
    name: 'log_search',
    toolset: 'observe',
    description: 'Search logs (project_id, level, q, service, from/to).',
    route: 'GET /api/observe/logs',
    budget: { kind: 'list' },
    optional: true,
  },
  {
    name: 'trace_get',
    toolset: 'observe',
    description: 'A trace: span tree with timings, and its logs.',
    route: 'GET /api/observe/traces/:traceId',
    optional: true,
  },
  {
    name: 'metric_query',
    toolset: 'observe',
    description: 'Query a metric over time (agg, step, match, group_by).',
    route: 'GET /api/observe/metrics',
    optional: true,
  },
  {
    name: 'session_timeline',
    toolset: 'observe',
    description: "An agent session's logs, spans and events by time.",
    route: 'GET /api/observe/sessions/:sid/timeline',
    budget: { kind: 'list' },
    optional: true,
  },
  {
    name: 'alert_list',
    toolset: 'observe',
    description: 'Alert rules; state=firing for the firing ones.',
    route: 'GET /api/observe/alerts',
    budget: { kind: 'list' },
    optional: true,
  },

  {
    name: 'session_start',
    toolset: 'sessions',
    description: 'Start an agent session on a project.',
    route: `POST ${P}/sessions`,
    optional: true,
  },
  {
    name: 'session_start_on_issue',
    toolset: 'sessions',
    description: 'Start an agent session on an issue.',
    route: `POST ${P}/issues/:number/sessions`,
    optional: true,
  },
  {
    name: 'session_list',
    toolset: 'sessions',
    description: 'List agent sessions.',
    route: `GET ${P}/sessions`,
    budget: { kind: 'list' },
    optional: true,
  },
  {
    name: 'session_get',
    toolset: 'sessions',
    description: 'A session: status, totals, what it produced, messages after `after`.',
    route: `GET ${P}/sessions/:sid`,
    optional: true,
  },
  {
    name: 'session_message',
    toolset: 'sessions',
    description: 'Send a message to a running session.',
    route: `POST ${P}/sessions/:sid/message`,
    optional: true,
  },
  {
    name: 'session_stop',
    toolset: 'sessions',
    description: 'Stop a session.',
    route: `POST ${P}/sessions/:sid/stop`,
    optional: true,
  },

  {
    name: 'notification_list',
    toolset: 'notifications',
    description: 'Your notifications.',
    route: 'GET /api/notifications',
    budget: { kind: 'list' },
  },
];
