import { describe, expect, it } from 'vitest';
import { decide, type RuleState } from './state.js';

const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
const rule = (over: Partial<RuleState>): RuleState => ({
  state: 'ok',
  pendingSince: null,
  clearSince: null,
  forSeconds: 10,
  resolveSeconds: 5,
  ...over,
});

describe('alert state machine', () => {
  it('ok → pending → firing after for_seconds, one episode start', () => {
    expect(decide(rule({}), false, t(0))).toEqual({ kind: 'none' });
    expect(decide(rule({}), true, t(0))).toEqual({ kind: 'transition', to: 'pending', pendingSince: t(0) });
    expect(decide(rule({ state: 'pending', pendingSince: t(0) }), true, t(9))).toEqual({ kind: 'none' });
    expect(decide(rule({ state: 'pending', pendingSince: t(0) }), true, t(10))).toEqual({
      kind: 'transition',
      to: 'firing',
      startedAt: t(0),
    });
    expect(decide(rule({ state: 'pending', pendingSince: t(0) }), false, t(5))).toEqual({
      kind: 'transition',
      to: 'ok',
      pendingSince: null,
    });
  });

  it('for_seconds 0 fires at once, also from resolved', () => {
    expect(decide(rule({ forSeconds: 0 }), true, t(3))).toEqual({
      kind: 'transition',
      to: 'firing',
      startedAt: t(3),
    });
    expect(decide(rule({ forSeconds: 0, state: 'resolved' }), true, t(3))).toMatchObject({ to: 'firing' });
  });

  it('firing resolves only after the condition is clear for resolve_seconds without interruption', () => {
    const firing = rule({ state: 'firing', pendingSince: t(0) });
    expect(decide(firing, true, t(20))).toEqual({ kind: 'none' });
    expect(decide(firing, false, t(20))).toEqual({ kind: 'bookkeeping', clearSince: t(20) });
    expect(decide({ ...firing, clearSince: t(20) }, false, t(24))).toEqual({ kind: 'none' });
    // Flapping back: the episode goes on, the clock restarts.
    expect(decide({ ...firing, clearSince: t(20) }, true, t(24))).toEqual({
      kind: 'bookkeeping',
      clearSince: null,
    });
    expect(decide({ ...firing, clearSince: t(20) }, false, t(25))).toEqual({
      kind: 'transition',
      to: 'resolved',
      startedAt: t(0),
    });
    expect(decide({ ...firing, resolveSeconds: 0 }, false, t(30))).toMatchObject({
      to: 'resolved',
      startedAt: t(0),
    });
  });

  it('a condition flapping every tick makes one episode per for_seconds + resolve_seconds at most', () => {
    let r = rule({ forSeconds: 0, resolveSeconds: 10 });
    let firings = 0;
    for (let s = 0; s < 60; s++) {
      const d = decide(r, s % 2 === 0, t(s));
      if (d.kind === 'bookkeeping') r = { ...r, clearSince: d.clearSince };
      if (d.kind === 'transition') {
        if (d.to === 'firing') firings++;
        r = {
          ...r,
          state: d.to,
          pendingSince: 'startedAt' in d ? (d.to === 'firing' ? d.startedAt : null) : d.pendingSince,
          clearSince: null,
        };
      }
    }
    expect(firings).toBe(1);
  });
});
