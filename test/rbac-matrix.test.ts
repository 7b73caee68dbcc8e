import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnyRouteDef, SelfScope } from '../src/core/http.js';
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

/**
 * Routes whose handler applies the settings rule on top of the declared permission (02-identity:
 * archive, like visibility or members, is the owner's or an admin's).
 */
const SETTINGS_RULE = new Set(['DELETE /api/projects/:id']);

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
  let selfService: (AnyRouteDef & { access: { self: SelfScope; selfParam?: string } })[];

  beforeAll(async () => {
    t = await createTestPlatform();
    for (const role of ROLES) tokens[role] = (await t.createUser(`as-${role}`, [role])).token;
    sharedProject = await insertProject(t, { name: 'matrix-internal', visibility: 'internal' });
    guarded = t.platform.registry.routes.filter(
      (r): r is (typeof guarded)[number] => typeof r.access === 'object' && 'permission' in r.access,
    );
    selfService = t.platform.registry.routes.filter(
      (r): r is (typeof selfService)[number] => typeof r.access === 'object' && 'self' in r.access,
    );
  });
  afterAll(() => t?.close());

  function urlFor(route: AnyRouteDef, projectId: string): string {
    const projectParam =
      typeof route.access === 'object' && 'permission' in route.access
        ? route.access.projectParam
        : undefined;
    // Valid-looking values of each parameter's type, so only authorization can refuse the call.
    const sample: Record<string, string> = { sha: 'a'.repeat(40), name: 'SOME_NAME', number: '1' };
    return route.url.replace(/:([A-Za-z]+)/g, (_m, name: string) =>
      name === projectParam ? projectId : (sample[name] ?? randomUUID()),
    );
  }

  async function call(route: AnyRouteDef, token: string, projectId: string) {
    // An empty body: authorization is decided before the body is validated, so an allowed call
    // answers 2xx/4xx-other-than-403 and never changes anything.
    return t.request(route.method, urlFor(route, projectId), {
      token,
      ...(route.method === 'GET' || route.method === 'DELETE' ? {} : { body: {} }),
      noAuditCheck: true,
    });
  }

  it('covers every permission-guarded route family', () => {
    expect(guarded.length).toBeGreaterThan(10);
    const families = new Set(guarded.map((r) => r.url.split('/').slice(0, 3).join('/')));
    expect([...families]).toEqual(expect.arrayContaining(['/api/users', '/api/admin', '/api/projects']));
  });

  /** allowed / 403 / hidden (404 "project not found"), or the mismatch. */
  function judge(
    where: string,
    res: { status: number; body?: { error?: { message?: string } } },
    expected: 'allowed' | 'denied' | 'hidden',
  ): string | null {
    const hidden = res.status === 404 && res.body?.error?.message === 'project not found';
    const got = res.status === 401 || res.status === 403 ? 'denied' : hidden ? 'hidden' : 'allowed';
    return got === expected ? null : `${where}: expected ${expected}, got ${res.status} (${got})`;
  }

  for (const role of ROLES) {
    it(`${role}: allowed exactly where the role holds the permission (global binding, project binding)`, async () => {
      const mismatches: string[] = [];
      const holds = (p: Permission) => ROLE_PERMISSIONS[role]!.includes(p);
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
      // A member: the same role bound to the private project only (no global role).
      const member = await t.createUser(`member-${role}`);
      const bind = await t.request('POST', `/api/admin/users/${member.id}/roles`, {
        token: t.adminToken,
        body: { role, project_id: privateProject },
      });
      expect(bind.status, JSON.stringify(bind.body)).toBe(201);
      const rank = (r: AnyRouteDef) => (r.method !== 'DELETE' ? 0 : r.url === '/api/projects/:id' ? 2 : 1);
      const ordered = [...guarded].sort((a, b) => rank(a) - rank(b));
      for (const route of ordered) {
        const { permission, projectParam } = route.access;
        const key = `${route.method} ${route.url}`;
        // The settings rule: only the owner (admin here) or a global admin, whatever the binding says.
        const settings = SETTINGS_RULE.has(key);
        // The member first: the global admin's DELETE archives the project.
        if (projectParam) {
          const expected =
            (holds(permission) && !settings) || permission === 'project:read' ? 'allowed' : 'denied';
          const res = await call(route, member.token, privateProject);
          const m = judge(`${key} [private, ${role} bound to it]`, res, expected);
          if (m) mismatches.push(m);
        }
        const projectIds = projectParam ? [internalProject, privateProject] : [internalProject];
        for (const projectId of projectIds) {
          const isPrivate = projectId === privateProject;
          let expected: 'allowed' | 'denied' | 'hidden';
          if (isPrivate && role !== 'admin') {
            // "Private" means members only: a global role other than admin does not reach it.
            expected = 'hidden';
          } else {
            const allowedByRole = holds(permission) && (!settings || role === 'admin');
            // Internal projects are readable by every signed-in user.
            expected =
              allowedByRole || (projectParam && permission === 'project:read') ? 'allowed' : 'denied';
          }
          const res = await call(route, tokens[role]!, projectId);
          const m = judge(`${key} [${isPrivate ? 'private' : 'internal'}, global ${role}]`, res, expected);
          if (m) mismatches.push(m);
        }
      }
      expect(mismatches).toEqual([]);
    });
  }

  it('a delegation on a private project: visible and readable, plus exactly the delegated permission', async () => {
    const mismatches: string[] = [];
    const privateProject = await insertProject(t, {
      name: 'matrix-private-delegation',
      visibility: 'private',
    });
    const delegate = await t.createUser('matrix-delegate');
    const granted = await t.request('POST', '/api/admin/delegations', {
      token: t.adminToken,
      body: { delegate_id: delegate.id, permission: 'secret:read', project_id: privateProject },
    });
    expect(granted.status, JSON.stringify(granted.body)).toBe(201);
    const other = await insertProject(t, { name: 'matrix-private-not-delegated', visibility: 'private' });
    for (const route of guarded.filter((r) => r.access.projectParam && r.method !== 'DELETE')) {
      const { permission } = route.access;
      const key = `${route.method} ${route.url}`;
      const expected = permission === 'project:read' || permission === 'secret:read' ? 'allowed' : 'denied';
      const m = judge(`${key} [delegated]`, await call(route, delegate.token, privateProject), expected);
      if (m) mismatches.push(m);
      const n = judge(`${key} [other private]`, await call(route, delegate.token, other), 'hidden');
      if (n) mismatches.push(n);
    }
    expect(mismatches).toEqual([]);
  });

  it('bounded tokens on project routes: scopes narrow, a project restriction makes other projects anonymous', async () => {
    const mismatches: string[] = [];
    const dev = await t.createUser('matrix-bounded', ['developer']);
    const own = await insertProject(t, { name: 'matrix-bounded-own', visibility: 'internal' });
    const other = await insertProject(t, { name: 'matrix-bounded-other', visibility: 'internal' });
    const mint = async (body: Record<string, unknown>) => {
      const res = await t.request('POST', '/api/tokens', {
        token: dev.token,
        body: { name: `b-${randomUUID().slice(0, 8)}`, ...body },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body.token as string;
    };
    const readOnly = await mint({ scopes: ['project:read'] });
    const restricted = await mint({ project_id: own });
    const developer = ROLE_PERMISSIONS.developer!;
    for (const route of guarded.filter((r) => r.access.projectParam && r.method !== 'DELETE')) {
      const { permission } = route.access;
      const key = `${route.method} ${route.url}`;
      const checks: [string, string, string, 'allowed' | 'denied' | 'hidden'][] = [
        ['project:read token', readOnly, own, permission === 'project:read' ? 'allowed' : 'denied'],
        [
          'restricted token, its project',
          restricted,
          own,
          developer.includes(permission) || permission === 'project:read' ? 'allowed' : 'denied',
        ],
        // An internal project is invisible to anonymous callers, and so to a token bound elsewhere.
        ['restricted token, another project', restricted, other, 'hidden'],
      ];
      for (const [name, token, projectId, expected] of checks) {
        const m = judge(`${key} [${name}]`, await call(route, token, projectId), expected);
        if (m) mismatches.push(m);
      }
    }
    expect(mismatches).toEqual([]);
  });

  it('self-service routes: scoped and project-restricted tokens get only what their bounds allow', async () => {
    const user = await t.createUser('matrix-self');
    const project = await insertProject(t, { name: 'matrix-self-project', visibility: 'internal' });
    const mint = async (body: Record<string, unknown>) => {
      const res = await t.request('POST', '/api/tokens', {
        token: user.token,
        body: { name: `k-${randomUUID().slice(0, 8)}`, ...body },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body.token as string;
    };
    const credentials: { name: string; token: string; allows: (scope: SelfScope) => boolean }[] = [
      { name: 'unscoped token', token: user.token, allows: () => true },
      {
        name: 'project:read token',
        token: await mint({ scopes: ['project:read'] }),
        allows: (s) => s === 'project:read',
      },
      { name: 'deploy:read token', token: await mint({ scopes: ['deploy:read'] }), allows: () => false },
      {
        name: 'project-restricted token',
        token: await mint({ project_id: project }),
        allows: (s) => s !== 'account',
      },
    ];
    // The SSE stream never ends when allowed; its refusal is the same registry check as the others.
    const routes = selfService.filter((r) => !r.raw);
    expect(routes.length).toBeGreaterThan(5);
    const mismatches: string[] = [];
    for (const route of routes) {
      for (const credential of credentials) {
        const url = route.url.replace(/:([A-Za-z]+)/g, (_m, name: string) =>
          name === route.access.selfParam ? user.id : randomUUID(),
        );
        const res = await t.request(route.method, url, {
          token: credential.token,
          ...(route.method === 'GET' || route.method === 'DELETE' ? {} : { body: {} }),
          noAuditCheck: true,
        });
        const got = res.status === 403 ? 'denied' : 'allowed';
        const expected = credential.allows(route.access.self) ? 'allowed' : 'denied';
        if (got !== expected)
          mismatches.push(
            `${route.method} ${route.url} with a ${credential.name}: ${res.status}, expected ${expected}`,
          );
      }
    }
    expect(mismatches).toEqual([]);
  });

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
