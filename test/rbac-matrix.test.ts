import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnyRouteDef } from '../src/core/http.js';
import { PERMISSIONS, type Permission } from '../src/core/permissions.js';
import { createTestPlatform, insertProject, servicesMissing, type TestPlatform } from './helpers/app.js';

/** The system roles as 01-foundation defines them: the matrix is checked against the spec, not the seed. */
const ROLE_PERMISSIONS: Record<string, readonly Permission[]> = {
  admin: PERMISSIONS,
  developer: ['project:read', 'project:write', 'agent:run', 'deploy:read', 'observe:read', 'secret:read'],
  ops: ['deploy:read', 'deploy:promote', 'observe:read', 'observe:write', 'alert:manage', 'secret:read'],
  agent: [],
  viewer: ['project:read', 'observe:read', 'deploy:read'],
};
const ROLES = Object.keys(ROLE_PERMISSIONS);

/** In-handler checks of `authenticated` routes, per the 02-identity API table. */
const HANDLER_CHECKED: {
  method: string;
  url: string;
  permission: Permission;
  body?: (user: string) => unknown;
}[] = [
  { method: 'GET', url: '/api/audit', permission: 'admin:users' },
  { method: 'GET', url: '/api/users/:user', permission: 'admin:users' },
  {
    method: 'PATCH',
    url: '/api/users/:user',
    permission: 'admin:users',
    body: () => ({ display_name: 'changed' }),
  },
  // Members change: project owner or admin:users (the matrix users own no project).
  {
    method: 'POST',
    url: '/api/projects/:project/members',
    permission: 'admin:users',
    body: (user) => ({ user_id: user, role: 'viewer' }),
  },
  { method: 'DELETE', url: '/api/projects/:project/members/:user', permission: 'admin:users' },
  // Webhooks (their URLs often carry tokens): project owner or admin:users, reading included.
  { method: 'GET', url: '/api/projects/:project/webhooks', permission: 'admin:users' },
];

describe.skipIf(servicesMissing)('role × permission matrix over every permission-guarded route', () => {
  let t: TestPlatform;
  const tokens: Record<string, string> = {};
  /** The project of the in-handler checks (the route matrix makes its own per role). */
  let sharedProject: string;
  let guarded: (AnyRouteDef & { access: { permission: Permission; projectParam?: string } })[];

  beforeAll(async () => {
    t = await createTestPlatform();
    for (const role of ROLES) tokens[role] = (await t.createUser(`as-${role}`, [role])).token;
    sharedProject = await insertProject(t, { name: 'matrix-internal', visibility: 'internal' });
    guarded = t.platform.registry.routes.filter(
      (r): r is (typeof guarded)[number] => typeof r.access === 'object' && r.access !== null,
    );
  });
  afterAll(() => t?.close());

  function urlFor(route: AnyRouteDef, projectId: string): string {
    const projectParam = typeof route.access === 'object' ? route.access.projectParam : undefined;
    // Valid-looking values of each parameter's type, so only authorization can refuse the call.
    const sample: Record<string, string> = { sha: 'a'.repeat(40), name: 'SOME_NAME', number: '1' };
    return route.url.replace(/:([A-Za-z]+)/g, (_m, name: string) =>
      name === projectParam ? projectId : (sample[name] ?? randomUUID()),
    );
  }

  async function call(route: AnyRouteDef, role: string, projectId: string) {
    // An empty body: authorization is decided before the body is validated, so an allowed call
    // answers 2xx/4xx-other-than-403 and never changes anything.
    return t.request(route.method, urlFor(route, projectId), {
      token: tokens[role],
      ...(route.method === 'GET' || route.method === 'DELETE' ? {} : { body: {} }),
      noAuditCheck: true,
    });
  }

  it('covers every permission-guarded route family', () => {
    expect(guarded.length).toBeGreaterThan(10);
    const families = new Set(guarded.map((r) => r.url.split('/').slice(0, 3).join('/')));
    expect([...families]).toEqual(expect.arrayContaining(['/api/users', '/api/admin', '/api/projects']));
  });

  for (const role of ROLES) {
    it(`${role}: allowed exactly where the role holds the permission`, async () => {
      const mismatches: string[] = [];
      // Allowed calls may change things (DELETE /api/projects/:id archives): each role gets its own
      // projects, and deletions run last.
      const internalProject = await insertProject(t, {
        name: `matrix-internal-${role}`,
        visibility: 'internal',
      });
      const privateProject = await insertProject(t, {
        name: `matrix-private-${role}`,
        visibility: 'private',
      });
      const rank = (r: AnyRouteDef) => (r.method !== 'DELETE' ? 0 : r.url === '/api/projects/:id' ? 2 : 1);
      const ordered = [...guarded].sort((a, b) => rank(a) - rank(b));
      for (const route of ordered) {
        const { permission, projectParam } = route.access;
        const projectIds = projectParam ? [internalProject, privateProject] : [internalProject];
        for (const projectId of projectIds) {
          const held = ROLE_PERMISSIONS[role]!.includes(permission);
          // Internal projects are readable by every signed-in user.
          const readable = projectParam && projectId === internalProject;
          const expectAllowed = held || (permission === 'project:read' && Boolean(readable));
          const res = await call(route, role, projectId);
          const where = `${route.method} ${route.url} [${projectId === privateProject ? 'private' : 'internal'}]`;
          const hidden = res.status === 404 && res.body?.error?.message === 'project not found';
          if (expectAllowed) {
            if (res.status === 401 || res.status === 403 || hidden)
              mismatches.push(`${where}: expected allowed, got ${res.status}`);
            continue;
          }
          // A private project that the role cannot read is hidden: 404, not 403.
          const mustHide = projectId === privateProject && !ROLE_PERMISSIONS[role]!.includes('project:read');
          if (mustHide ? !hidden : res.status !== 403) {
            mismatches.push(`${where}: expected ${mustHide ? '404 (hidden)' : '403'}, got ${res.status}`);
          }
        }
      }
      expect(mismatches).toEqual([]);
    });
  }

  for (const role of ROLES) {
    it(`${role}: in-handler checks follow the same table`, async () => {
      const target = (await t.createUser(`target-${role}`)).id;
      for (const check of HANDLER_CHECKED) {
        const held = ROLE_PERMISSIONS[role]!.includes(check.permission);
        const url = check.url.replace(':user', target).replace(':project', sharedProject);
        const res = await t.request(check.method, url, {
          token: tokens[role],
          ...(check.body ? { body: check.body(target) } : {}),
          noAuditCheck: true,
        });
        expect(
          res.status === 403 ? 'denied' : 'allowed',
          `${role} ${check.method} ${check.url} → ${res.status}`,
        ).toBe(held ? 'allowed' : 'denied');
      }
    });
  }
});
