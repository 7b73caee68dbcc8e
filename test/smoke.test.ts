import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';

describe.skipIf(servicesMissing)('smoke', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    const start = Date.now();
    t = await createTestPlatform();
    console.log('platform up in', Date.now() - start, 'ms');
  });
  afterAll(() => t?.close());
  it('me', async () => {
    const res = await t.request('GET', '/api/auth/me', { token: t.adminToken });
    expect(res.status).toBe(200);
    console.log(JSON.stringify(res.body));
  });
});
