import type { Readable } from 'node:stream';
import { z } from 'zod';
import { AppError, notFound } from '../core/errors.js';
import { type AnyRouteDef, route } from '../core/http.js';
import { downloadHeaders } from '../store/objects/download.js';
import type { FsObjectStore } from '../store/objects/fs.js';

const OCTET_STREAM = 'application/octet-stream';

/**
 * Presigned GET/PUT of the filesystem store: the HMAC signature is the authorization, `uploadLimit`
 * bounds a PUT body (LFS objects). Downloads carry the download headers (store/objects/download.ts); uploads are stored as
 * application/octet-stream whatever Content-Type the uploader sent, and a URL signed with a digest
 * and size (LFS) stores nothing unless the body matches them.
 */
export function objectUrlRoutes(store: FsObjectStore, uploadLimit: number): AnyRouteDef[] {
  const params = z.object({ '*': z.string().min(1).max(2048) });
  const query = z.object({
    method: z.enum(['GET', 'PUT']),
    expires: z.string().max(20),
    signature: z.string().max(200),
    sha256: z.string().max(64).optional(),
    size: z.string().max(20).optional(),
  });
  const verify = (method: 'GET' | 'PUT', key: string, q: z.infer<typeof query>) => {
    const integrity =
      q.sha256 !== undefined || q.size !== undefined ? { sha256: q.sha256, size: q.size } : undefined;
    if (q.method !== method || !store.verifyPresigned(method, key, q.expires, q.signature, integrity)) {
      throw new AppError(403, 'forbidden', 'invalid or expired signature');
    }
  };
  return [
    route({
      method: 'GET',
      url: '/api/objects/*',
      summary: 'Download through a presigned URL (always an attachment; see docs/objects.md)',
      tags: ['objects'],
      access: 'public',
      params,
      query,
      raw: true,
      produces: {
        status: 200,
        contentType: 'application/octet-stream',
        description: 'the object (an attachment)',
      },
      handler: async ({ params: p, query: q, reply }) => {
        verify('GET', p['*'], q);
        const object = await store.get(p['*']);
        if (!object) throw notFound('object');
        return reply
          .headers(downloadHeaders({ contentType: object.info.contentType, filename: p['*'] }))
          .header('content-length', object.info.size)
          .header('etag', `"${object.info.etag}"`)
          .send(object.body);
      },
    }),
    route({
      method: 'PUT',
      url: '/api/objects/*',
      summary: 'Upload through a presigned URL',
      tags: ['objects'],
      access: 'public',
      params,
      query,
      bodyLimit: uploadLimit,
      raw: true,
      produces: { status: 200, description: 'stored; the ETag header names the stored object' },
      handler: async ({ params: p, query: q, req, reply }) => {
        verify('PUT', p['*'], q);
        const length = Number(req.headers['content-length']);
        const body = uploadBody(req.body);
        const info = await store.put(p['*'], body, {
          contentType: OCTET_STREAM,
          ...(q.size !== undefined ? { contentLength: Number(q.size) } : {}),
          ...(q.size === undefined && Number.isFinite(length) ? { contentLength: length } : {}),
          ...(q.sha256 !== undefined ? { sha256: q.sha256 } : {}),
        });
        return reply.code(200).header('etag', `"${info.etag}"`).send();
      },
    }),
  ];
}

/**
 * The body as the store takes it: every content type but JSON arrives as the raw stream (app.ts's
 * '*' parser). A body Fastify parsed as JSON is no longer the bytes that were sent.
 */
function uploadBody(body: unknown): Buffer | Readable {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(body) || typeof (body as { pipe?: unknown }).pipe === 'function') {
    return body as Buffer | Readable;
  }
  throw new AppError(415, 'unsupported_media_type', 'send the object as application/octet-stream');
}
