import { readdirSync, readFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
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

/**
 * The producer owns the declaration: each event name's prefix belongs to one module, and only that
 * module's events.ts declares it (a module emitting another's event, as issues does for
 * `mr.commented`, uses the owner's declaration). A new prefix is added here with its module.
 */
const EVENT_PREFIX_OWNER: Record<string, string> = {
  push: 'git',
  issue: 'issues',
  mr: 'mergerequests',
  pipeline: 'pipeline',
  deployment: 'deployer',
  session: 'agents',
  alert: 'observe',
};

describe('event declarations', () => {
  const src = fileURLToPath(new URL('..', import.meta.url));
  const sources = readdirSync(src, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => ({ file: f.split(sep).join('/'), text: readFileSync(join(src, f), 'utf8') }));

  /** The event names a file adds to DomainEvents. */
  const declared = (text: string): string[] => {
    const block = /interface DomainEvents \{([^}]*)\}/.exec(text)?.[1] ?? '';
    return [...block.matchAll(/'([a-z_]+\.[a-z_.]+)'\s*:/g)].map((m) => m[1]!);
  };

  it("each module's events.ts declares only the events of its own prefixes", () => {
    const wrong: string[] = [];
    let count = 0;
    for (const { file, text } of sources.filter(
      (s) => /^[a-z]+\/events\.ts$/.test(s.file) && s.file !== 'core/events.ts',
    )) {
      const module = file.split('/')[0]!;
      for (const name of declared(text)) {
        count++;
        const owner = EVENT_PREFIX_OWNER[name.split('.')[0]!];
        if (owner !== module) wrong.push(`${file} declares ${name} (owner: ${owner ?? 'no module'})`);
      }
    }
    expect(wrong).toEqual([]);
    expect(count).toBeGreaterThan(10);
  });

  it('DomainEvents is augmented only in events.ts files, and no file imports one for side effects', () => {
    const outside = sources
      .filter(
        (s) =>
          !/^[a-z]+\/events\.ts$/.test(s.file) && s.file !== 'core/events.ts' && declared(s.text).length > 0,
      )
      .map((s) => s.file);
    const sideEffect = sources.filter((s) => /^import '[^']*events\.js';$/m.test(s.text)).map((s) => s.file);
    expect({ outside, sideEffect }).toEqual({ outside: [], sideEffect: [] });
  });
});
