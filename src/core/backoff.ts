/**
 * Delay before retry number `attempt` (1 = after the first failure): exponential from `baseMs`, with
 * ±20 % jitter so work that failed together is not retried together, never more than `maxMs`.
 */
export function backoffDelayMs(attempt: number, baseMs: number, maxMs: number): number {
  const exp = baseMs * 2 ** Math.max(0, attempt - 1);
  return Math.min(maxMs, exp * (0.8 + Math.random() * 0.4));
}
