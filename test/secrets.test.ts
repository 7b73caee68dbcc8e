// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${{ secrets.NAME }}` placeholders are the subject of these tests.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretDecryptionError, SecretResolutionError, type SecretsService } from '../src/secrets/index.js';
import { createTestPlatform, insertProject, servicesMissing, type TestPlatform } from './helpers/app.js';

const consumer = { kind: 'pipeline', id: 'run-1' };

describe.skipIf(servicesMissing)('secrets', () => {
  let t: TestPlatform;
  let secrets: SecretsService;
  let projectA: string;
  let projectB: string;
  const db = () => t.platform.drivers.db.db;
  const put = (project: string | null, body: Record<string, unknown>) =>
    t.request('POST', project ? `/api/projects/${project}/secrets` : '/api/admin/secrets', {
      token: t.adminToken,
      body,
    });

  beforeAll(async () => {
    t = await createTestPlatform();
    secrets = t.platform.services.secrets;
    projectA = await insertProject(t, { name: 'alpha' });
    projectB = await insertProject(t, { name: 'beta' });
  });
  afterAll(() => t?.close());

  describe('create, update, list, delete', () => {
    it('creates with 201 and metadata only', async () => {
      const res = await put(projectA, { name: 'CREATE_ME', value: 'v-create-1', scope: 'pipeline' });
      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        name: 'CREATE_ME',
        project_id: projectA,
        scope: 'pipeline',
        version: 1,
        created_at: expect.any(String),
        updated_at: expect.any(String),
        created_by: t.adminId,
        updated_by: t.adminId,
      });
      expect(res.text).not.toContain('v-create-1');
    });

    it('defaults the scope to all', async () => {
      const res = await put(projectA, { name: 'DEFAULT_SCOPE', value: 'x' });
      expect(res.status).toBe(201);
      expect(res.body.scope).toBe('all');
    });

    it('updates with 200 as a new version; scope kept when omitted, changed when given', async () => {
      const dev = await t.createUser('updater', ['admin']);
      await put(projectA, { name: 'VERSIONED', value: 'one', scope: 'agent' });
      const second = await t.request('POST', `/api/projects/${projectA}/secrets`, {
        token: dev.token,
        body: { name: 'VERSIONED', value: 'two' },
      });
      expect(second.status).toBe(200);
      expect(second.body).toMatchObject({ version: 2, scope: 'agent', created_by: t.adminId });
      expect(second.body.updated_by).toBe(dev.id);
      const third = await put(projectA, { name: 'VERSIONED', value: 'three', scope: 'deploy' });
      expect(third.body).toMatchObject({ version: 3, scope: 'deploy', updated_by: t.adminId });
      expect(await secrets.resolve(projectA, 'VERSIONED', 'deploy', consumer)).toBe('three');
      const rows = await db().selectFrom('secrets').selectAll().where('name', '=', 'VERSIONED').execute();
      expect(rows).toHaveLength(1);
    });

    it('lists metadata by name with cursor pagination, never a value or ciphertext', async () => {
      for (const n of ['LIST_A', 'LIST_B', 'LIST_C'])
        await put(projectB, { name: n, value: `value-of-${n}` });
      const first = await t.request('GET', `/api/projects/${projectB}/secrets?limit=2`, {
        token: t.adminToken,
      });
      expect(first.status).toBe(200);
      expect(first.body.items.map((i: { name: string }) => i.name)).toEqual(['LIST_A', 'LIST_B']);
      expect(first.body.next_cursor).toEqual(expect.any(String));
      const second = await t.request(
        'GET',
        `/api/projects/${projectB}/secrets?limit=2&cursor=${first.body.next_cursor}`,
        { token: t.adminToken },
      );
      expect(second.body.items.map((i: { name: string }) => i.name)).toEqual(['LIST_C']);
      expect(second.body.next_cursor).toBeNull();
      for (const item of [...first.body.items, ...second.body.items]) {
        expect(Object.keys(item).sort()).toEqual(
          [
            'created_at',
            'created_by',
            'name',
            'project_id',
            'scope',
            'updated_at',
            'updated_by',
            'version',
          ].sort(),
        );
      }
      expect(first.text + second.text).not.toMatch(/value-of-|ciphertext/);
    });

    it('deletes with 204, then 404 for the unknown name', async () => {
      await put(projectA, { name: 'DOOMED', value: 'bye' });
      const del = await t.request('DELETE', `/api/projects/${projectA}/secrets/DOOMED`, {
        token: t.adminToken,
      });
      expect(del.status).toBe(204);
      expect(del.text).toBe('');
      const again = await t.request('DELETE', `/api/projects/${projectA}/secrets/DOOMED`, {
        token: t.adminToken,
      });
      expect(again.status).toBe(404);
      expect(again.body.error.code).toBe('not_found');
    });

    it('answers 404 for a project that does not exist', async () => {
      const res = await put('00000000-0000-4000-8000-000000000000', { name: 'X', value: 'y' });
      expect(res.status).toBe(404);
    });

    it('manages global secrets under /api/admin/secrets', async () => {
      const created = await put(null, { name: 'GLOBAL_ONE', value: 'g1' });
      expect(created.status).toBe(201);
      expect(created.body.project_id).toBeNull();
      const updated = await put(null, { name: 'GLOBAL_ONE', value: 'g2' });
      expect(updated.status).toBe(200);
      expect(updated.body.version).toBe(2);
      const list = await t.request('GET', '/api/admin/secrets', { token: t.adminToken });
      expect(list.body.items.map((i: { name: string }) => i.name)).toContain('GLOBAL_ONE');
      const projectList = await t.request('GET', `/api/projects/${projectA}/secrets`, {
        token: t.adminToken,
      });
      expect(projectList.body.items.map((i: { name: string }) => i.name)).not.toContain('GLOBAL_ONE');
      const del = await t.request('DELETE', '/api/admin/secrets/GLOBAL_ONE', { token: t.adminToken });
      expect(del.status).toBe(204);
      expect(
        (await t.request('DELETE', '/api/admin/secrets/GLOBAL_ONE', { token: t.adminToken })).status,
      ).toBe(404);
    });
  });

  describe('validation', () => {
    it.each([
      ['', 'empty'],
      ['1ABC', 'leading digit'],
      ['A-B', 'dash'],
      ['A'.repeat(256), 'too long'],
      ['ÄBC', 'non-ASCII'],
    ])('rejects the name %s (%s) with 400', async (name) => {
      const res = await put(projectA, { name, value: 'leak-check-name' });
      expect(res.status).toBe(400);
      expect(res.text).not.toContain('leak-check-name');
    });

    it('accepts a 255-character name and a leading underscore', async () => {
      expect((await put(projectA, { name: `_${'a'.repeat(254)}`, value: 'x' })).status).toBe(201);
    });

    it('rejects an unknown scope', async () => {
      const res = await put(projectA, { name: 'BAD_SCOPE', value: 'x', scope: 'everything' });
      expect(res.status).toBe(400);
    });

    it('accepts exactly 64 KiB and rejects one byte more with 413, without echoing it', async () => {
      const ok = await put(projectA, { name: 'BIG', value: 'a'.repeat(65536) });
      expect(ok.status).toBe(201);
      const big = `${'b'.repeat(65536)}c`;
      const res = await put(projectA, { name: 'TOO_BIG', value: big });
      expect(res.status).toBe(413);
      expect(res.body.error.code).toBe('payload_too_large');
      expect(res.body.error.message).toMatch(/65537 bytes; the limit is 65536/);
      expect(res.text).not.toContain('bbbbbbbbbb');
      // Multi-byte characters count in UTF-8 bytes.
      expect((await put(projectA, { name: 'TOO_BIG', value: 'é'.repeat(32769) })).status).toBe(413);
    });

    it('rejects a non-string value with 400', async () => {
      expect((await put(projectA, { name: 'NUM', value: 12345 })).status).toBe(400);
    });
  });

  describe('resolution', () => {
    beforeAll(async () => {
      await put(projectA, { name: 'ONLY_PIPELINE', value: 'pipe-value', scope: 'pipeline' });
      await put(projectA, { name: 'ONLY_AGENT', value: 'agent-value', scope: 'agent' });
      await put(projectA, { name: 'EVERYONE', value: 'all-value', scope: 'all' });
      await put(projectA, { name: 'SHARED', value: 'project-a-shared' });
      await put(null, { name: 'SHARED', value: 'global-shared' });
      await put(null, { name: 'GLOBAL_TOKEN', value: 'global-token-value' });
      await put(null, { name: 'SHADOWED', value: 'global-shadowed', scope: 'all' });
      await put(projectA, { name: 'SHADOWED', value: 'project-shadowed', scope: 'deploy' });
    });

    it('resolves a project secret', async () => {
      expect(await secrets.resolve(projectA, 'ONLY_PIPELINE', 'pipeline', consumer)).toBe('pipe-value');
    });

    it('isolates scopes: pipeline is not resolvable for agent and vice versa', async () => {
      await expect(secrets.resolve(projectA, 'ONLY_PIPELINE', 'agent', consumer)).rejects.toBeInstanceOf(
        SecretResolutionError,
      );
      await expect(secrets.resolve(projectA, 'ONLY_AGENT', 'pipeline', consumer)).rejects.toThrow(
        /ONLY_AGENT/,
      );
      expect(
        await secrets.resolve(projectA, 'ONLY_AGENT', 'agent', { kind: 'agent_session', id: 's1' }),
      ).toBe('agent-value');
      await expect(secrets.resolve(projectA, 'ONLY_PIPELINE', 'deploy', consumer)).rejects.toThrow();
    });

    it('resolves scope all for every consumer scope; requested scope all gets only scope-all secrets', async () => {
      for (const scope of ['pipeline', 'agent', 'deploy', 'all'] as const) {
        expect(await secrets.resolve(projectA, 'EVERYONE', scope, consumer)).toBe('all-value');
      }
      await expect(secrets.resolve(projectA, 'ONLY_PIPELINE', 'all', consumer)).rejects.toThrow(
        SecretResolutionError,
      );
    });

    it('isolates projects: B cannot resolve A’s secret; the global fallback works', async () => {
      await expect(secrets.resolve(projectB, 'EVERYONE', 'pipeline', consumer)).rejects.toThrow(/"EVERYONE"/);
      expect(await secrets.resolve(projectB, 'SHARED', 'pipeline', consumer)).toBe('global-shared');
      expect(await secrets.resolve(projectA, 'SHARED', 'pipeline', consumer)).toBe('project-a-shared');
      expect(await secrets.resolve(projectB, 'GLOBAL_TOKEN', 'agent', consumer)).toBe('global-token-value');
      expect(await secrets.resolve(null, 'GLOBAL_TOKEN', 'agent', consumer)).toBe('global-token-value');
    });

    it('a project secret shadows the global one even when its scope does not allow the consumer', async () => {
      expect(await secrets.resolve(projectA, 'SHADOWED', 'deploy', consumer)).toBe('project-shadowed');
      await expect(secrets.resolve(projectA, 'SHADOWED', 'pipeline', consumer)).rejects.toThrow(/SHADOWED/);
      expect(await secrets.resolve(projectB, 'SHADOWED', 'pipeline', consumer)).toBe('global-shadowed');
    });

    it('an unknown name is an error naming it, not an empty string', async () => {
      const err = await secrets.resolve(projectA, 'NO_SUCH_SECRET', 'pipeline', consumer).catch((e) => e);
      expect(err).toBeInstanceOf(SecretResolutionError);
      expect(err.message).toContain('"NO_SUCH_SECRET"');
      expect(err.missing).toEqual(['NO_SUCH_SECRET']);
    });

    it('resolveTemplate replaces several occurrences and leaves other text alone', async () => {
      const text = [
        'echo ${{ secrets.ONLY_PIPELINE }} and ${{ secrets.ONLY_PIPELINE }}',
        'token=${{ secrets.GLOBAL_TOKEN }}; $HOME ${{ env.X }} ${ secrets.EVERYONE } {{ secrets.EVERYONE }}',
        'all: ${{ secrets.EVERYONE }}',
      ].join('\n');
      const out = await secrets.resolveTemplate(projectA, 'pipeline', text, consumer);
      expect(out).toBe(
        [
          'echo pipe-value and pipe-value',
          'token=global-token-value; $HOME ${{ env.X }} ${ secrets.EVERYONE } {{ secrets.EVERYONE }}',
          'all: all-value',
        ].join('\n'),
      );
    });

    it('resolveTemplate accepts only the exact `${{ secrets.NAME }}` spelling', async () => {
      const text =
        '${{secrets.EVERYONE}} ${{  secrets.EVERYONE  }} ${{ secrets.EVERYONE}} ${{ secrets.EVERYONE }}';
      expect(await secrets.resolveTemplate(projectA, 'pipeline', text, consumer)).toBe(
        '${{secrets.EVERYONE}} ${{  secrets.EVERYONE  }} ${{ secrets.EVERYONE}} all-value',
      );
    });

    it('resolveTemplate does not re-expand placeholders inside values', async () => {
      await put(projectA, { name: 'TRICKY', value: '${{ secrets.EVERYONE }}' });
      expect(await secrets.resolveTemplate(projectA, 'agent', 'x ${{ secrets.TRICKY }} y', consumer)).toBe(
        'x ${{ secrets.EVERYONE }} y',
      );
    });

    it('resolveTemplate fails naming every missing or out-of-scope secret, and audits nothing', async () => {
      const before = await t.auditCount();
      const err = await secrets
        .resolveTemplate(
          projectA,
          'agent',
          '${{ secrets.MISSING_1 }} ${{ secrets.ONLY_PIPELINE }} ${{ secrets.EVERYONE }}',
          consumer,
        )
        .catch((e) => e);
      expect(err).toBeInstanceOf(SecretResolutionError);
      expect(err.missing).toEqual(['MISSING_1', 'ONLY_PIPELINE']);
      expect(err.message).toContain('"MISSING_1"');
      expect(await t.auditCount()).toBe(before);
    });

    it('text without placeholders is returned as it is, with no audit row', async () => {
      const before = await t.auditCount();
      expect(await secrets.resolveTemplate(projectA, 'pipeline', 'plain $text', consumer)).toBe(
        'plain $text',
      );
      expect(await t.auditCount()).toBe(before);
    });

    it('a ciphertext copied to another row fails to decrypt with a typed error', async () => {
      await put(projectA, { name: 'COPY_SRC', value: 'copied-value' });
      await put(projectB, { name: 'COPY_DST', value: 'original' });
      await put(projectA, { name: 'COPY_DST', value: 'original-a' });
      const src = await db()
        .selectFrom('secrets')
        .select('ciphertext')
        .where('project_id', '=', projectA)
        .where('name', '=', 'COPY_SRC')
        .executeTakeFirstOrThrow();
      const ciphertext = Buffer.from(src.ciphertext);
      // Same name, other project; other name, same project.
      await db()
        .updateTable('secrets')
        .set({ ciphertext })
        .where('project_id', '=', projectB)
        .where('name', '=', 'COPY_DST')
        .execute();
      await db()
        .updateTable('secrets')
        .set({ ciphertext })
        .where('project_id', '=', projectA)
        .where('name', '=', 'COPY_DST')
        .execute();
      for (const p of [projectA, projectB]) {
        const err = await secrets.resolve(p, 'COPY_DST', 'pipeline', consumer).catch((e) => e);
        expect(err).toBeInstanceOf(SecretDecryptionError);
        expect(err.message).not.toContain('copied-value');
      }
    });

    it('a tampered ciphertext in the database fails to decrypt', async () => {
      await put(projectB, { name: 'TAMPERED', value: 'tamper-value' });
      await sql`update secrets set ciphertext = overlay(ciphertext placing '\\x00'::bytea from 20 for 1) where name = 'TAMPERED'`.execute(
        db(),
      );
      await expect(secrets.resolve(projectB, 'TAMPERED', 'pipeline', consumer)).rejects.toBeInstanceOf(
        SecretDecryptionError,
      );
    });

    it('a service with another master key cannot decrypt', async () => {
      const { SecretsService: Service } = await import('../src/secrets/index.js');
      const other = new Service(db(), Buffer.alloc(32, 7));
      await expect(other.resolve(projectA, 'EVERYONE', 'pipeline', consumer)).rejects.toBeInstanceOf(
        SecretDecryptionError,
      );
    });
  });

  describe('audit', () => {
    const auditRows = (name: string) =>
      db()
        .selectFrom('audit_log')
        .select(['action', 'actor_name', 'project_id', 'detail', 'resource_type'])
        .where(sql<boolean>`detail->>'name' = ${name}`)
        .orderBy('created_at')
        .execute();

    it('records create, update, resolve and delete with the name and never the value', async () => {
      await put(projectA, { name: 'AUDITED', value: 'audit-value-1' });
      await put(projectA, { name: 'AUDITED', value: 'audit-value-2' });
      await secrets.resolve(projectA, 'AUDITED', 'pipeline', { kind: 'pipeline', id: 'run-42' });
      await secrets.resolveTemplate(projectA, 'agent', '${{ secrets.AUDITED }}${{ secrets.AUDITED }}', {
        kind: 'agent_session',
        id: 'sess-7',
      });
      await t.request('DELETE', `/api/projects/${projectA}/secrets/AUDITED`, { token: t.adminToken });
      const rows = await auditRows('AUDITED');
      expect(rows.map((r) => r.action)).toEqual([
        'secret.create',
        'secret.update',
        'secret.resolve',
        'secret.resolve',
        'secret.delete',
      ]);
      expect(rows.every((r) => r.project_id === projectA && r.resource_type === 'secret')).toBe(true);
      expect(rows[2]!.detail).toMatchObject({
        name: 'AUDITED',
        consumer: 'pipeline:run-42',
        scope: 'pipeline',
      });
      expect(rows[2]!.actor_name).toBe('pipeline:run-42');
      expect(rows[3]!.detail).toMatchObject({ consumer: 'agent_session:sess-7' });
      expect(JSON.stringify(rows)).not.toContain('audit-value');
    });
  });

  describe('permissions', () => {
    let dev: { id: string; token: string };
    let viewer: { id: string; token: string };
    let outsider: { id: string; token: string };
    beforeAll(async () => {
      dev = await t.createUser('secret-dev');
      viewer = await t.createUser('secret-viewer');
      outsider = await t.createUser('secret-outsider', ['developer']);
      for (const [user, role] of [
        [dev, 'developer'],
        [viewer, 'viewer'],
      ] as const) {
        const bind = await t.request('POST', `/api/admin/users/${user.id}/roles`, {
          token: t.adminToken,
          body: { role, project_id: projectA },
        });
        expect(bind.status).toBe(201);
      }
    });

    it('developer on the project can list but not create or delete', async () => {
      expect((await t.request('GET', `/api/projects/${projectA}/secrets`, { token: dev.token })).status).toBe(
        200,
      );
      const create = await t.request('POST', `/api/projects/${projectA}/secrets`, {
        token: dev.token,
        body: { name: 'DEV_TRY', value: 'x' },
      });
      expect(create.status).toBe(403);
      const del = await t.request('DELETE', `/api/projects/${projectA}/secrets/EVERYONE`, {
        token: dev.token,
      });
      expect(del.status).toBe(403);
    });

    it('authorization comes before name checks: an impossible name is 403 without access, 404 with', async () => {
      const url = `/api/projects/${projectA}/secrets/1-not-a-name`;
      expect((await t.request('DELETE', url, { token: dev.token })).status).toBe(403);
      expect((await t.request('DELETE', url, { token: t.adminToken })).status).toBe(404);
      expect(
        (await t.request('DELETE', '/api/admin/secrets/1-not-a-name', { token: dev.token })).status,
      ).toBe(403);
    });

    it('developer of project A is not a developer of project B', async () => {
      const res = await t.request('GET', `/api/projects/${projectB}/secrets`, { token: dev.token });
      expect([403, 404]).toContain(res.status);
    });

    it('viewer cannot list', async () => {
      const res = await t.request('GET', `/api/projects/${projectA}/secrets`, { token: viewer.token });
      expect(res.status).toBe(403);
    });

    it('only admin changes global secrets; anonymous gets 401/404', async () => {
      const res = await t.request('POST', '/api/admin/secrets', {
        token: outsider.token,
        body: { name: 'NOPE', value: 'x' },
      });
      expect(res.status).toBe(403);
      expect((await t.request('DELETE', '/api/admin/secrets/SHARED', { token: outsider.token })).status).toBe(
        403,
      );
      expect((await t.request('GET', '/api/admin/secrets', { token: viewer.token })).status).toBe(403);
      expect((await t.request('GET', '/api/admin/secrets')).status).toBe(401);
      // A private project is not revealed to anonymous callers.
      expect((await t.request('GET', `/api/projects/${projectA}/secrets`)).status).toBe(404);
    });
  });
});
