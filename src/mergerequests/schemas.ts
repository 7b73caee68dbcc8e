import { z } from 'zod';
import { mergeRequestStatuses, mergeStrategies, mrReviewVerdicts } from '../store/schema.js';

/** The success bodies of the merge request routes (API contract v2). */

const timestamp = z.string().describe('ISO 8601');
const sha = z.string().describe('commit id');
const userRef = z.object({ id: z.uuid(), name: z.string() });

export const MergeRequestSchema = z
  .object({
    id: z.uuid(),
    project_id: z.uuid(),
    number: z.number().int(),
    title: z.string(),
    body: z.string(),
    status: z.enum(mergeRequestStatuses),
    source_branch: z.string(),
    target_branch: z.string(),
    author: userRef,
    head_sha: sha.nullable(),
    base_sha: sha.nullable(),
    merge_strategy: z.enum(mergeStrategies).nullable(),
    merge_sha: sha.nullable(),
    merged_by: userRef.nullable(),
    merged_at: timestamp.nullable(),
    closed_at: timestamp.nullable(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'MergeRequest' });

export const MergeRequestListSchema = z
  .object({ items: z.array(MergeRequestSchema), next_cursor: z.string().nullable() })
  .meta({ id: 'MergeRequestList' });

export const MergeRequestReviewSchema = z
  .object({
    id: z.uuid(),
    reviewer: userRef,
    verdict: z.enum(mrReviewVerdicts),
    body: z.string(),
    commit_sha: sha.nullable(),
    created_at: timestamp,
  })
  .meta({ id: 'MergeRequestReview' });

/** One rule the merge enforces that is not met now; the merge answers 409 with the first one. */
export const MergeBlockerSchema = z
  .object({
    reason: z.string().describe('the refusal reason the merge answers with (mr.*)'),
    message: z.string(),
    details: z.array(z.object({ path: z.string().optional(), message: z.string() }).loose()),
  })
  .meta({ id: 'MergeRequestBlocker' });

export const MergeRequestDetailSchema = MergeRequestSchema.extend({
  target_sha: sha.nullable(),
  reviewers: z.array(userRef),
  reviews: z.array(MergeRequestReviewSchema.extend({ stale: z.boolean() })),
  comments: z.array(
    z.object({
      id: z.uuid(),
      author: userRef,
      body: z.string(),
      created_at: timestamp,
      updated_at: timestamp,
    }),
  ),
  commits: z.array(
    z.object({
      sha,
      author_name: z.string(),
      author_email: z.string(),
      authored_at: timestamp,
      title: z.string(),
    }),
  ),
  diff_stats: z
    .object({
      files_changed: z.number().int(),
      additions: z.number().int(),
      deletions: z.number().int(),
      files: z.array(
        z.object({
          path: z.string(),
          additions: z.number().int().nullable(),
          deletions: z.number().int().nullable(),
        }),
      ),
    })
    .nullable(),
  /** The git side of mergeability (null once merged or closed); `mergeable` is the overall answer. */
  mergeability: z
    .object({
      mergeable: z.boolean(),
      conflicts: z.array(z.string()),
      fast_forward_possible: z.boolean(),
      reason: z
        .string()
        .nullable()
        .describe('why git cannot merge: conflicts, nothing to merge, a branch deleted'),
    })
    .nullable(),
  approvals: z.object({
    required: z.number().int(),
    given: z.number().int(),
    approved_by: z.array(z.string()),
    changes_requested_by: z.array(z.string()),
  }),
  checks: z.object({
    required: z.boolean(),
    latest_pipeline: z.object({ pipeline_id: z.uuid(), status: z.string() }).nullable(),
    runs: z
      .array(
        z.object({
          name: z.string().describe('e.g. deploy/diff'),
          conclusion: z.enum(['success', 'neutral', 'failure']),
          summary: z.string(),
          head_sha: sha,
          text: z.string().describe('what the check shows (deploy/diff: a unified diff per environment)'),
          updated_at: z.string(),
        }),
      )
      .describe('named checks posted on the head by other modules; a failure blocks the merge'),
  }),
  /** True when a merge (default strategy) would be accepted now: `blockers` is empty. */
  mergeable: z.boolean(),
  blockers: z.array(MergeBlockerSchema),
}).meta({ id: 'MergeRequestDetail' });
