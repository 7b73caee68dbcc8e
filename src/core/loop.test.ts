import { describe, expect, it } from 'vitest';
import { CoalescedPass } from './loop.js';

/** A pass that blocks until released, counting how often it ran. */
function gatedPass() {
  const state = { runs: 0, concurrent: 0, maxConcurrent: 0, release: () => {} };
  const pass = async () => {
    state.runs++;
    state.concurrent++;
    state.maxConcurrent = Math.max(state.maxConcurrent, state.concurrent);
    await new Promise<void>((resolve) => {
      state.release = resolve;
    });
    state.concurrent--;
  };
  return { state, pass };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('CoalescedPass', () => {
  it('ignores kicks until the scheduler ran it once', async () => {
    let runs = 0;
    const loop = new CoalescedPass(
      async () => {
        runs++;
      },
      () => {},
    );
    loop.kick();
    await tick();
    expect(runs).toBe(0);
    await loop.run();
    expect(runs).toBe(1);
    loop.kick();
    await tick();
    expect(runs).toBe(2);
  });

  it('a request during a pass runs exactly one more pass after it, never two at once', async () => {
    const { state, pass } = gatedPass();
    const loop = new CoalescedPass(pass, () => {});
    const first = loop.run();
    await tick();
    loop.kick();
    loop.kick();
    loop.kick();
    state.release();
    await tick();
    expect(state.runs).toBe(2);
    state.release();
    await first;
    expect(state.runs).toBe(2);
    expect(state.maxConcurrent).toBe(1);
  });

  it('stop waits for the pass in progress and starts no more', async () => {
    const { state, pass } = gatedPass();
    const loop = new CoalescedPass(pass, () => {});
    void loop.run();
    await tick();
    loop.kick();
    const stopped = loop.stop();
    state.release();
    await stopped;
    expect(state.runs).toBe(1);
    expect(loop.stopped).toBe(true);
    await loop.run();
    loop.kick();
    await tick();
    expect(state.runs).toBe(1);
  });

  it('a failing kicked pass is reported, and the next pass still runs', async () => {
    const errors: unknown[] = [];
    let fail = false;
    let runs = 0;
    const loop = new CoalescedPass(
      async () => {
        runs++;
        if (fail) throw new Error('boom');
      },
      (err) => errors.push(err),
    );
    await loop.run();
    fail = true;
    loop.kick();
    await tick();
    await tick();
    expect(errors).toHaveLength(1);
    fail = false;
    await loop.run();
    expect(runs).toBe(3);
  });

  it('a run whose signal is aborted does not look again', async () => {
    const { state, pass } = gatedPass();
    const loop = new CoalescedPass(pass, () => {});
    const ac = new AbortController();
    const p = loop.run(ac.signal);
    await tick();
    loop.kick();
    ac.abort();
    state.release();
    await p;
    expect(state.runs).toBe(1);
  });
});
