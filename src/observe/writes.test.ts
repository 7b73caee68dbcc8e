import { describe, expect, it } from 'vitest';
import { batchJson } from './writes.js';

describe('batchJson', () => {
  it('is JSON.stringify for ordinary text, paired surrogates included', () => {
    const rows = [{ message: 'plain "quoted" \\ text\n', emoji: '😀', n: 1, none: null }];
    expect(batchJson(rows)).toBe(JSON.stringify(rows));
  });

  it('turns a lone surrogate and NUL into U+FFFD (PostgreSQL refuses their escapes)', () => {
    expect(JSON.parse(batchJson(['x\ud800y', 'a\u0000b', 'z\udfff']))).toEqual([
      'x\ufffdy',
      'a\ufffdb',
      'z\ufffd',
    ]);
  });

  it('leaves a literal backslash followed by u alone', () => {
    const rows = ['lit \\ud800', '\\\\u0000', 'both \\\ud800'];
    expect(JSON.parse(batchJson(rows))).toEqual(['lit \\ud800', '\\\\u0000', 'both \\\ufffd']);
  });
});
