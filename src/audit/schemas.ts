import { z } from 'zod';

/** One row of the audit log: who did what to which resource, and when. */
export const AuditEntrySchema = z
  .object({
    id: z.uuid(),
    actor_id: z.uuid().nullable().describe('null: the system, an anonymous caller or a failed sign-in'),
    actor_name: z.string(),
    action: z.string().describe('e.g. project.create, mr.merge'),
    resource_type: z.string(),
    resource_id: z.string().nullable(),
    project_id: z.uuid().nullable(),
    detail: z.record(z.string(), z.unknown()),
    ip: z.string().nullable(),
    created_at: z.string().describe('ISO 8601'),
  })
  .meta({ id: 'AuditEntry' });

export const AuditListSchema = z.object({
  items: z.array(AuditEntrySchema),
  next_cursor: z.string().nullable(),
});
