import { describe, expect, it } from 'vitest';
import { AppError, fromDatabaseError, fromUnavailableDependency, rateLimited } from './errors.js';
import { decodeCursor, encodeCursor, toPage } from './pagination.js';

describe('database error mapping', () => {
  it.each([
    ['23505', 409, 'conflict'],
    ['23503', 422, 'unprocessable'],
    ['23514', 422, 'unprocessable'],
    ['22P02', 400, 'bad_request'],
  ])('SQLSTATE %s → %i %s', (code, status, apiCode) => {
    const mapped = fromDatabaseError({ code, constraint: 'users_name_key' });
    expect(mapped).toBeInstanceOf(AppError);
    expect(mapped?.status).toBe(status);
    expect(mapped?.code).toBe(apiCode);
  });

  it('leaves other errors alone', () => {
    expect(fromDatabaseError(new Error('x'))).toBeUndefined();
    expect(fromDatabaseError({ code: 'ECONNREFUSED' })).toBeUndefined();
    expect(fromDatabaseError({ code: '57P01' })).toBeUndefined();
  });

  it('rate limit errors carry Retry-After', () => {
    expect(rateLimited(42).headers).toEqual({ 'retry-after': '42' });
    expect(rateLimited(42).toBody().error.code).toBe('rate_limited');
  });
});

describe('unreachable backing service mapping', () => {
  it.each([
    [
      'a refused socket',
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), {
        code: 'ECONNREFUSED',
        syscall: 'connect',
      }),
    ],
    [
      'a missing unix socket',
      Object.assign(new Error('connect ENOENT /x/.s.PGSQL.5432'), { code: 'ENOENT', syscall: 'connect' }),
    ],
    ['an administrator shutdown', Object.assign(new Error('terminating connection'), { code: '57P01' })],
    ['a connection exception', Object.assign(new Error('x'), { code: '08006' })],
    ['a lost pg connection', new Error('Connection terminated unexpectedly')],
    ['a pool timeout', new Error('timeout exceeded when trying to connect')],
    ['a closed Valkey connection', new Error('Connection is closed.')],
    [
      'Valkey retries exhausted',
      Object.assign(new Error('Reached the max retries'), { name: 'MaxRetriesPerRequestError' }),
    ],
  ])('%s → 503 unavailable with Retry-After', (_, err) => {
    const mapped = fromUnavailableDependency(err);
    expect(mapped?.status).toBe(503);
    expect(mapped?.code).toBe('unavailable');
    expect(mapped?.headers).toEqual({ 'retry-after': '1' });
  });

  it('leaves other errors alone', () => {
    expect(fromUnavailableDependency(new Error('x'))).toBeUndefined();
    expect(
      fromUnavailableDependency(
        Object.assign(new Error('no such file'), { code: 'ENOENT', syscall: 'open' }),
      ),
    ).toBeUndefined();
    expect(fromUnavailableDependency({ code: '23505' })).toBeUndefined();
  });
});

describe('pagination', () => {
  it('round-trips cursors and rejects foreign ones', () => {
    expect(decodeCursor(encodeCursor(['a', 'b']), 2)).toEqual(['a', 'b']);
    expect(() => decodeCursor('not-a-cursor', 2)).toThrow(AppError);
    expect(() => decodeCursor(encodeCursor(['a']), 2)).toThrow(AppError);
  });

  it('uses the extra row only to tell that there is more', () => {
    const rows = [{ k: '1' }, { k: '2' }, { k: '3' }];
    const page = toPage(
      rows,
      2,
      (r) => [r.k],
      (r) => r.k,
    );
    expect(page.items).toEqual(['1', '2']);
    expect(decodeCursor(page.next_cursor!, 1)).toEqual(['2']);
    expect(
      toPage(
        rows.slice(0, 2),
        2,
        (r) => [r.k],
        (r) => r.k,
      ).next_cursor,
    ).toBeNull();
  });
});
