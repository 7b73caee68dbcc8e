/**
 * Polls until `fn` returns a truthy value (which it returns) or the deadline passes; errors thrown by
 * `fn` count as "not yet" and the last one is reported. No fixed sleeps in tests: wait for the thing.
 * A leaf module, so unit tests can use it without loading the application.
 */
export async function eventually<T>(
  fn: () => T | Promise<T>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}
