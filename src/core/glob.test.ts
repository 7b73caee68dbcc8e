import { describe, expect, it } from 'vitest';
import { globMatch } from './glob.js';

describe('globMatch', () => {
  it.each([
    ['main', 'main', true],
    ['main', 'main2', false],
    ['release/*', 'release/1.0', true],
    ['release/*', 'release/a/b', true],
    ['release/*', 'releases/1', false],
    ['v?', 'v1', true],
    ['v?', 'v10', false],
    ['v[0-9]*', 'v2.1', true],
    ['v[!0-9]*', 'v2.1', false],
    ['a.b', 'axb', false],
    ['feat+x', 'feat+x', true],
    ['(x)', '(x)', true],
    ['*', 'anything/at/all', true],
  ])('%s ~ %s = %s', (pattern, value, expected) => {
    expect(globMatch(pattern, value)).toBe(expected);
  });
});
