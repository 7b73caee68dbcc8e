import { z } from 'zod';

/** The success bodies of the repository browser routes (API contract v2); browse.ts builds them. */

const timestamp = z.string().describe('ISO 8601');
const sha = z.string().describe('git object id');

const person = z.object({ name: z.string(), email: z.string(), date: timestamp });

export const BranchSchema = z
  .object({
    name: z.string(),
    sha,
    is_default: z.boolean(),
    commit: z.object({ sha, title: z.string(), committed_at: timestamp }),
  })
  .meta({ id: 'Branch' });

export const BranchListSchema = z
  .object({ items: z.array(BranchSchema), next_cursor: z.string().nullable() })
  .meta({ id: 'BranchList' });

export const TagSchema = z
  .object({
    name: z.string(),
    sha: sha.describe('the tag object (annotated) or the commit (lightweight)'),
    commit_sha: sha,
    annotated: z.boolean(),
    message: z.string(),
  })
  .meta({ id: 'Tag' });

export const TagListSchema = z
  .object({ items: z.array(TagSchema), next_cursor: z.string().nullable() })
  .meta({ id: 'TagList' });

export const TreeEntrySchema = z
  .object({
    name: z.string(),
    path: z.string(),
    type: z.enum(['blob', 'tree', 'commit']).describe('commit: a submodule'),
    size: z.number().int().nullable().describe('bytes; null for trees and submodules'),
    mode: z.string(),
    sha,
  })
  .meta({ id: 'TreeEntry' });

export const TreeSchema = z
  .object({ ref: z.string(), commit_sha: sha, path: z.string(), entries: z.array(TreeEntrySchema) })
  .meta({ id: 'Tree' });

export const BlobSchema = z
  .object({
    ref: z.string(),
    commit_sha: sha,
    path: z.string(),
    sha,
    size: z.number().int(),
    encoding: z.enum(['utf8', 'base64']),
    content: z.string(),
  })
  .meta({ id: 'Blob' });

export const CommitSchema = z
  .object({
    sha,
    parents: z.array(sha),
    author: person,
    committer: person,
    title: z.string(),
    message: z.string(),
  })
  .meta({ id: 'Commit' });

export const CommitListSchema = z
  .object({ items: z.array(CommitSchema), next_cursor: z.string().nullable() })
  .meta({ id: 'CommitList' });

export const DiffFileSchema = z
  .object({
    path: z.string(),
    additions: z.number().int(),
    deletions: z.number().int(),
    binary: z.boolean(),
  })
  .meta({ id: 'DiffFile' });

const diff = {
  files: z.array(DiffFileSchema),
  stats: z.object({
    files_changed: z.number().int(),
    additions: z.number().int(),
    deletions: z.number().int(),
  }),
  patch: z.string(),
  patch_truncated: z.boolean().describe('the patch was cut at 1 MiB'),
};

export const CommitDetailSchema = CommitSchema.extend(diff).meta({ id: 'CommitDetail' });

export const CompareSchema = z
  .object({
    base_sha: sha,
    head_sha: sha,
    merge_base_sha: sha.nullable(),
    commits: z.array(CommitSchema).describe('in head, not in base; newest first, at most 250'),
    ...diff,
  })
  .meta({ id: 'Compare' });

export type CommitInfo = z.output<typeof CommitSchema>;
export type DiffFile = z.output<typeof DiffFileSchema>;
