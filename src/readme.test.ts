import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configTable } from './config.js';

describe('README', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

  it('has the two commands a newcomer needs', () => {
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm ci && npm test');
  });

  it('documents every setting exactly as `platform config --reference` prints it', () => {
    expect(readme).toContain(configTable());
  });
});
