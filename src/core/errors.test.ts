import { describe, expect, it } from 'vitest';
import { AppError, fromDatabaseError, rateLimited } from './errors.js';
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
