import { describe, expect, it } from 'vitest';
import { closest, editDistance } from './suggest.js';

describe('did-you-mean', () => {
  it('measures edits', () => {
    expect(editDistance('serve', 'serve')).toBe(0);
    expect(editDistance('serv', 'serve')).toBe(1);
    expect(editDistance('PROT', 'PORT')).toBe(2);
  });
  it('suggests a prefix or the nearest close candidate, or nothing', () => {
    expect(closest('serv', ['serve', 'secrets', 'config'])).toBe('serve');
    expect(closest('confg', ['serve', 'config'])).toBe('config');
    expect(closest('xyzzy', ['serve', 'config'])).toBeNull();
  });
});
