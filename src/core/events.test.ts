import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { EventBus } from './events.js';

declare module './events.js' {
  interface DomainEvents {
    'test.happened': { n: number };
  }
}

describe('EventBus', () => {
  it('onAny receives every event with its name until unsubscribed', async () => {
    const bus = new EventBus();
    const seen: string[] = [];
    const off = bus.onAny((name, payload) => {
      seen.push(`${name}:${JSON.stringify(payload)}`);
    });
    bus.emit('test.happened', { n: 3 });
    await bus.drain();
    off();
    bus.emit('test.happened', { n: 4 });
    await bus.drain();
    expect(seen).toEqual(['test.happened:{"n":3}']);
  });

  it('delivers typed payloads to every subscriber and stops after unsubscribe', async () => {
    const bus = new EventBus();
    const a: number[] = [];
    const b: number[] = [];
    const offA = bus.on('test.happened', (p) => {
      a.push(p.n);
    });
    bus.on('test.happened', async (p) => {
      b.push(p.n * 10);
    });
    bus.emit('test.happened', { n: 1 });
    await bus.drain();
    offA();
    bus.emit('test.happened', { n: 2 });
    await bus.drain();
    expect(a).toEqual([1]);
    expect(b).toEqual([10, 20]);
  });

  it('a failing handler is logged and does not stop the others', async () => {
    const lines: string[] = [];
    const bus = new EventBus(pino({}, { write: (l: string) => void lines.push(l) }));
    const seen: number[] = [];
    bus.on('test.happened', () => {
      throw new Error('boom');
    });
    bus.on('test.happened', (p) => {
      seen.push(p.n);
    });
    bus.emit('test.happened', { n: 7 });
    await bus.drain();
    expect(seen).toEqual([7]);
    expect(lines.join('')).toContain('domain event handler failed');
  });
});
