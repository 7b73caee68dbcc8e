import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from './backoff.js';

describe('backoffDelayMs', () => {
  it('doubles per attempt within ±20 % and never exceeds the maximum', () => {
    for (let attempt = 1; attempt <= 8; attempt++) {
      const exp = 100 * 2 ** (attempt - 1);
      for (let i = 0; i < 50; i++) {
        const d = backoffDelayMs(attempt, 100, 5000);
        expect(d).toBeGreaterThanOrEqual(Math.min(5000, exp * 0.8));
        expect(d).toBeLessThanOrEqual(Math.min(5000, exp * 1.2));
      }
    }
  });
});
