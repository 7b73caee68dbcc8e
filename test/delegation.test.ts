import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, insertProject, servicesMissing, type TestPlatform } from './helpers/app.js';

describe.skipIf(servicesMissing)('delegation', () => {
  let t: TestPlatform;
  let lead: { id: string; token: string };
  let agent: { id: string; token: string };
  let project: string;

  beforeAll(async () => {
    t = await createTestPlatform();
    // A developer who may delegate: developer role + a custom role carrying admin:delegate.
    lead = await t.createUser('lead', ['developer']);
    const delegator = await t.request('POST', '/api/admin/roles', {
      token: t.adminToken,
      body: { name: 'delegator', permissions: ['admin:delegate'] },
    });
    expect(delegator.status).toBe(201);
    expect(
      (
        await t.request('POST', `/api/admin/users/${lead.id}/roles`, {
          token: t.adminToken,
          body: { role: 'delegator' },
        })
      ).status,
    ).toBe(201);
    agent = await t.createUser('agent-1', ['agent'], { userType: 'agent' });
    project = await insertProject(t, { name: 'delegated', visibility: 'private' });
    // lead is a developer on the project
    expect(
      (
        await t.request('POST', `/api/projects/${project}/members`, {
          token: t.adminToken,
          body: { user_id: lead.id, role: 'developer' },
        })
      ).status,
    ).toBe(201);
  });
  afterAll(() => t?.close());

  const agentCanWrite = async () => {
    const me = await t.request('GET', '/api/auth/me', { token: agent.token });
    return me.body.permissions as string[];
  };

  it('grant → the delegate can act → revoke → denied at once', async () => {
    // Before: the agent role holds nothing, and the private project is hidden.
    const before = await t.request('GET', `/api/projects/${project}/members`, { token: agent.token });
    expect(before.status).toBe(404);

    const grant = await t.request('POST', '/api/admin/delegations', {
      token: lead.token,
      body: { delegate_id: agent.id, permission: 'project:read', project_id: project, reason: 'session 42' },
    });
    expect(grant.status).toBe(201);
    expect(grant.body.delegator_id).toBe(lead.id);

    const during = await t.request('GET', `/api/projects/${project}/members`, { token: agent.token });
    expect(during.status).toBe(200);
    expect(during.body.items.map((m: { user_name: string }) => m.user_name)).toContain('lead');

    const listed = await t.request('GET', '/api/admin/delegations?active=true', { token: agent.token });
    expect(listed.body.items.map((d: { id: string }) => d.id)).toContain(grant.body.id);

    const revoke = await t.request('DELETE', `/api/admin/delegations/${grant.body.id}`, {
      token: lead.token,
    });
    expect(revoke.status).toBe(204);
    const after = await t.request('GET', `/api/projects/${project}/members`, { token: agent.token });
    expect(after.status).toBe(404);
  });

  it('a global delegation shows in the delegate’s effective permissions', async () => {
    const grant = await t.request('POST', '/api/admin/delegations', {
      token: lead.token,
      body: { delegate_id: agent.id, permission: 'observe:read' },
    });
    expect(grant.status).toBe(201);
    expect(await agentCanWrite()).toContain('observe:read');
    await t.request('DELETE', `/api/admin/delegations/${grant.body.id}`, { token: lead.token });
    expect(await agentCanWrite()).not.toContain('observe:read');
  });

  it('an expired delegation grants nothing', async () => {
    const grant = await t.request('POST', '/api/admin/delegations', {
      token: lead.token,
      body: {
        delegate_id: agent.id,
        permission: 'deploy:read',
        expires_at: new Date(Date.now() + 60_000).toISOString(),
      },
    });
    expect(grant.status).toBe(201);
    expect(await agentCanWrite()).toContain('deploy:read');
    // Let it expire (moving the expiry into the past is what the clock would do).
    await t.platform.drivers.db.db
      .updateTable('delegations')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', grant.body.id)
      .execute();
    await t.platform.rbac.invalidate({ userId: agent.id });
    expect(await agentCanWrite()).not.toContain('deploy:read');
  });

  it('a cached resolution does not outlive the delegation’s expiry', async () => {
    const expires = new Date(Date.now() + 1500);
    const grant = await t.request('POST', '/api/admin/delegations', {
      token: lead.token,
      body: { delegate_id: agent.id, permission: 'secret:read', expires_at: expires.toISOString() },
    });
    expect(grant.status).toBe(201);
    expect(await agentCanWrite()).toContain('secret:read');
    // No invalidation: the cached entry itself carries the expiry.
    while (Date.now() <= expires.getTime() + 50) await new Promise((r) => setTimeout(r, 50));
    expect(await agentCanWrite()).not.toContain('secret:read');
  });

  it('delegating a permission one lacks → 403', async () => {
    const res = await t.request('POST', '/api/admin/delegations', {
      token: lead.token,
      body: { delegate_id: agent.id, permission: 'deploy:promote' },
    });
    expect(res.status).toBe(403);
    expect(res.body.error.message).toContain('deploy:promote');
  });

  it('delegating without admin:delegate → 403', async () => {
    const dev = await t.createUser('plain-dev', ['developer']);
    const res = await t.request('POST', '/api/admin/delegations', {
      token: dev.token,
      body: { delegate_id: agent.id, permission: 'project:read' },
    });
    expect(res.status).toBe(403);
  });

  it('only the delegator (or an admin:delegate holder) may revoke', async () => {
    const grant = await t.request('POST', '/api/admin/delegations', {
      token: lead.token,
      body: { delegate_id: agent.id, permission: 'observe:read' },
    });
    const byAgent = await t.request('DELETE', `/api/admin/delegations/${grant.body.id}`, {
      token: agent.token,
    });
    expect(byAgent.status).toBe(403);
    const byAdmin = await t.request('DELETE', `/api/admin/delegations/${grant.body.id}`, {
      token: t.adminToken,
    });
    expect(byAdmin.status).toBe(204);
    const twice = await t.request('DELETE', `/api/admin/delegations/${grant.body.id}`, {
      token: t.adminToken,
    });
    expect(twice.status).toBe(409);
  });

  it('a global-only permission cannot be delegated on one project', async () => {
    const res = await t.request('POST', '/api/admin/delegations', {
      token: t.adminToken,
      body: { delegate_id: agent.id, permission: 'admin:users', project_id: project },
    });
    expect(res.status).toBe(422);
  });
});
