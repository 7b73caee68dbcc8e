/** The 13 permissions (seeded by migration 0011). Route declarations and RBAC share this list. */
export const PERMISSIONS = [
  'project:read',
  'project:write',
  'project:delete',
  'agent:run',
  'deploy:read',
  'deploy:promote',
  'observe:read',
  'observe:write',
  'alert:manage',
  'secret:read',
  'secret:write',
  'admin:users',
  'admin:delegate',
] as const;

export type Permission = (typeof PERMISSIONS)[number];

export const isPermission = (value: string): value is Permission =>
  (PERMISSIONS as readonly string[]).includes(value);

/** Permissions that make sense on one project: all but the user-administration ones, which are global. */
export const PROJECT_PERMISSIONS: readonly Permission[] = PERMISSIONS.filter((p) => !p.startsWith('admin:'));
