import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lfsObjectKey } from '../src/git/lfs.js';
import type { ObjectStore } from '../src/store/index.js';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';
import { s3Store, startS3 } from './helpers/s3.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** What a download of user bytes from the platform's origin must carry (docs/objects.md). */
function expectInertDownload(res: Response, { fullHeaders }: { fullHeaders: boolean }): void {
  expect(res.headers.get('content-type')).toBe('application/octet-stream');
  expect(res.headers.get('content-disposition')).toMatch(/^attachment/);
  if (fullHeaders) {
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toBe("sandbox; default-src 'none'");
  }
}

interface LfsObjectAnswer {
  oid: string;
  size: number;
  error?: { code: number; message: string };
  actions?: {
    upload?: { href: string; header?: Record<string, string> };
    download?: { href: string };
    verify?: { href: string; header?: Record<string, string> };
  };
}

for (const kind of ['fs', 's3'] as const) {
  describe.skipIf(servicesMissing)(`LFS objects on the ${kind} store: integrity and inert downloads`, () => {
    let t: TestPlatform;
    let s3: Awaited<ReturnType<typeof startS3>> | undefined;
    let objects: ObjectStore;
    let projectId: string;
    let owner: { id: string; token: string };
    let attacker: { id: string; token: string };
    const basic = (name: string, token: string) =>
      `Basic ${Buffer.from(`${name}:${token}`).toString('base64')}`;

    beforeAll(async () => {
      if (kind === 's3') s3 = await startS3();
      t = await createTestPlatform({ listen: true, ...(s3 ? { objects: s3Store(s3.endpoint) } : {}) });
      objects = t.platform.drivers.objects;
      owner = await t.createUser('olga', ['developer']);
      attacker = await t.createUser('mallory', ['developer']);
      const created = await t.request('POST', '/api/projects', {
        token: owner.token,
        body: { name: 'assets' },
      });
      expect(created.status).toBe(201);
      projectId = created.body.id;
      // The attacker is a writer of the project: allowed to upload, not to pre-empt real objects.
      const member = await t.request('POST', `/api/projects/${projectId}/members`, {
        token: owner.token,
        body: { user_id: attacker.id, role: 'developer' },
      });
      expect(member.status, JSON.stringify(member.body)).toBe(201);
    });
    afterAll(async () => {
      await t?.close();
      await s3?.stop();
    });

    const lfs = async (who: { name: string; token: string }, url: string, body: unknown) => {
      const res = await fetch(`${t.baseUrl}/olga/assets.git/info/lfs/${url}`, {
        method: 'POST',
        headers: {
          authorization: basic(who.name, who.token),
          'content-type': 'application/vnd.git-lfs+json',
          accept: 'application/vnd.git-lfs+json',
        },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const batch = async (
      who: { name: string; token: string },
      operation: 'upload' | 'download',
      oid: string,
      size: number,
    ): Promise<LfsObjectAnswer> => {
      const res = await lfs(who, 'objects/batch', { operation, objects: [{ oid, size }] });
      expect(res.status).toBe(200);
      return (res.body.objects as LfsObjectAnswer[])[0]!;
    };
    const putBytes = (
      upload: NonNullable<LfsObjectAnswer['actions']>['upload'],
      body: Buffer,
      contentType?: string,
    ) =>
      fetch(upload!.href, {
        method: 'PUT',
        headers: { ...upload!.header, ...(contentType ? { 'content-type': contentType } : {}) },
        body,
      }).then(async (res) => ({ status: res.status, text: await res.text() }));
    const row = (oid: string) =>
      t.platform.drivers.db.db
        .selectFrom('lfs_objects')
        .select(['size', 'verified_at'])
        .where('project_id', '=', projectId)
        .where('oid', '=', oid)
        .executeTakeFirst();
    const stored = async (oid: string) => {
      const got = await objects.get(lfsObjectKey(projectId, oid));
      if (!got) return undefined;
      const chunks: Buffer[] = [];
      for await (const c of got.body) chunks.push(Buffer.from(c as Buffer));
      return Buffer.concat(chunks);
    };
    const o = () => ({ name: 'olga', token: owner.token });
    const m = () => ({ name: 'mallory', token: attacker.token });

    it('an object uploaded as text/html with a script is downloaded as an inert attachment', async () => {
      const html = Buffer.from(
        `<html><body><script src="/api/objects/lfs/x.js"></script>${randomBytes(8).toString('hex')}</body></html>`,
      );
      const oid = sha256(html);
      const up = await batch(m(), 'upload', oid, html.length);
      // The attacker sends its own Content-Type: it is not what the object is served with.
      const put = await putBytes(up.actions!.upload, html, 'text/html; charset=utf-8');
      expect(put.status).toBe(200);
      expect((await lfs(m(), 'verify', { oid, size: html.length })).status).toBe(200);
      const down = await batch(o(), 'download', oid, html.length);
      const res = await fetch(down.actions!.download!.href);
      expect(res.status).toBe(200);
      // S3 answers with the type and disposition signed into the URL; nosniff and the sandbox CSP
      // are the platform's own responses (the bucket is another origin).
      expectInertDownload(res, { fullHeaders: kind === 'fs' });
      expect(Buffer.from(await res.arrayBuffer()).equals(html)).toBe(true);
      if (kind === 'fs')
        expect((await objects.head(lfsObjectKey(projectId, oid)))?.contentType).toBe(
          'application/octet-stream',
        );
    });

    it('wrong bytes under a real oid never become the object, and do not pre-empt the real upload', async () => {
      const real = randomBytes(64 * 1024);
      const forged = randomBytes(real.length);
      const oid = sha256(real);

      // The attacker announces the real oid and size, then uploads other bytes.
      const attempt = await batch(m(), 'upload', oid, real.length);
      expect(attempt.actions?.upload).toBeDefined();
      const put = await putBytes(attempt.actions!.upload, forged);
      if (kind === 'fs') {
        // Checked on receipt: refused with the stable error body, nothing stored.
        expect(put.status).toBe(422);
        const body = JSON.parse(put.text) as { error: { code: string; message: string } };
        expect(body.error.code).toBe('unprocessable');
        expect(body.error.message).toMatch(/SHA-256/);
        expect(await stored(oid)).toBeUndefined();
        expect((await lfs(m(), 'verify', { oid, size: real.length })).status).toBe(404);
      } else {
        // s3rver does not enforce x-amz-checksum-sha256 (AWS S3 and MinIO do): verify is the check,
        // and it deletes the bytes that do not hash to their oid.
        expect(put.status).toBe(200);
        const verify = await lfs(m(), 'verify', { oid, size: real.length });
        expect(verify.status).toBe(422);
        expect((verify.body.error as { code: string }).code).toBe('unprocessable');
        expect(await stored(oid)).toBeUndefined();
      }
      expect((await row(oid))?.verified_at ?? null).toBeNull();
      // Nobody can download it: it does not exist.
      expect((await batch(o(), 'download', oid, real.length)).error?.code).toBe(404);

      // The real upload is asked for (not "already there"), lands, verifies and downloads intact.
      const mine = await batch(o(), 'upload', oid, real.length);
      expect(mine.actions?.upload, JSON.stringify(mine)).toBeDefined();
      expect((await putBytes(mine.actions!.upload, real)).status).toBe(200);
      expect((await lfs(o(), 'verify', { oid, size: real.length })).status).toBe(200);
      expect((await row(oid))?.verified_at).not.toBeNull();
      const down = await batch(m(), 'download', oid, real.length);
      const res = await fetch(down.actions!.download!.href);
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(real)).toBe(true);

      // Once it exists, an upload batch has nothing to do, and a wrong size does not reset it.
      expect((await batch(m(), 'upload', oid, real.length)).actions).toBeUndefined();
      expect((await batch(m(), 'upload', oid, real.length + 1)).error?.code).toBe(422);
      expect((await row(oid))?.verified_at).not.toBeNull();

      if (kind === 'fs') {
        // The attacker's earlier URL is bound to the oid: re-using it with other bytes is refused
        // and the object's bytes are unchanged.
        expect((await putBytes(attempt.actions!.upload, forged)).status).toBe(422);
        expect((await stored(oid))?.equals(real)).toBe(true);
      }
    });

    it('bytes labelled text/plain are stored exactly (not re-encoded); a JSON label is refused', async () => {
      const bytes = Buffer.concat([Buffer.from('looks like text '), Buffer.from([0xff, 0xfe, 0x80, 0xc3])]);
      const oid = sha256(bytes);
      const up = await batch(o(), 'upload', oid, bytes.length);
      if (kind === 'fs') {
        const json = await putBytes(up.actions!.upload, Buffer.from('{"a":1}'), 'application/json');
        expect(json.status).toBe(415);
        expect(JSON.parse(json.text).error.code).toBe('unsupported_media_type');
        expect(await stored(oid)).toBeUndefined();
      }
      expect((await putBytes(up.actions!.upload, bytes, 'text/plain; charset=utf-8')).status).toBe(200);
      expect((await lfs(o(), 'verify', { oid, size: bytes.length })).status).toBe(200);
      expect((await stored(oid))?.equals(bytes)).toBe(true);
    });

    it('a presigned URL is not written to the log with its signature', async () => {
      const bytes = randomBytes(100);
      const oid = sha256(bytes);
      const up = await batch(o(), 'upload', oid, bytes.length);
      expect((await putBytes(up.actions!.upload, bytes)).status).toBe(200);
      expect((await lfs(o(), 'verify', { oid, size: bytes.length })).status).toBe(200);
      const down = await batch(o(), 'download', oid, bytes.length);
      const res = await fetch(down.actions!.download!.href);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      const logged = t.logLines.join('\n');
      for (const href of [up.actions!.upload!.href, down.actions!.download!.href]) {
        const signature = new URL(href).searchParams.get(kind === 'fs' ? 'signature' : 'X-Amz-Signature')!;
        expect(signature.length).toBeGreaterThan(16);
        expect(logged).not.toContain(signature);
      }
      if (kind === 'fs') expect(logged).toContain('/api/objects/lfs/');
    });
  });
}

describe.skipIf(servicesMissing)('repository files and artifacts are inert downloads', () => {
  let t: TestPlatform;
  let dev: { id: string; token: string };
  let projectId: string;
  const tmp = tempDir();

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    dev = await t.createUser('rita', ['developer']);
    const created = await t.request('POST', '/api/projects', { token: dev.token, body: { name: 'site' } });
    projectId = created.body.id;
    const work = path.join(tmp.dir, 'work');
    await gitOk(['clone', authUrl(t.baseUrl, 'rita', dev.token, '/rita/site.git'), work]);
    writeFileSync(path.join(work, 'index.html'), '<script>fetch("/api/tokens",{method:"POST"})</script>');
    writeFileSync(
      path.join(work, 'logo.svg'),
      '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    );
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'pages'], { cwd: work });
    await gitOk(['push', 'origin', 'main'], { cwd: work });
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  it.each(['index.html', 'logo.svg'])('/raw serves %s as an inert attachment', async (file) => {
    const res = await fetch(`${t.baseUrl}/api/projects/${projectId}/raw?path=${file}`, {
      headers: { authorization: `Bearer ${dev.token}` },
    });
    expect(res.status).toBe(200);
    expectInertDownload(res, { fullHeaders: true });
    expect(res.headers.get('content-disposition')).toContain(`filename="${file}"`);
    expect(await res.text()).toContain('<script>');
  });

  it('an artifact stored as text/html is downloaded as an inert attachment', async () => {
    const db = t.platform.drivers.db.db;
    const pipeline = await db
      .insertInto('pipelines')
      .values({
        project_id: projectId,
        number: 1,
        trigger: 'api',
        git_ref: 'main',
        commit_sha: 'a'.repeat(40),
        variables: JSON.stringify({}),
        status: 'success',
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const key = `artifacts/${pipeline.id}/report.html`;
    await t.platform.drivers.objects.put(key, '<script>alert(document.cookie)</script>', {
      contentType: 'text/html',
    });
    const artifact = await db
      .insertInto('artifacts')
      .values({
        pipeline_id: pipeline.id,
        project_id: projectId,
        name: 'report.html',
        object_key: key,
        content_type: 'text/html',
        size_bytes: 39,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const redirect = await fetch(`${t.baseUrl}/api/projects/${projectId}/artifacts/${artifact.id}/download`, {
      headers: { authorization: `Bearer ${dev.token}` },
      redirect: 'manual',
    });
    expect(redirect.status).toBe(302);
    await redirect.arrayBuffer();
    const res = await fetch(redirect.headers.get('location')!);
    expect(res.status).toBe(200);
    expectInertDownload(res, { fullHeaders: true });
    expect(res.headers.get('content-disposition')).toContain('filename="report.html"');
  });
});
