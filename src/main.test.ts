import { describe, expect, it } from 'vitest';
import { parseCommandLine } from './main.js';

describe('command line parsing', () => {
  it('takes --name value and --name=value, for settings and command options alike', () => {
    const parsed = parseCommandLine([
      'admin',
      'create-user',
      'bob',
      'bob@x.test',
      '--password',
      'pw123456',
      '--port=9000',
      '--data-dir',
      '/srv/p',
    ]);
    expect(parsed.positionals).toEqual(['admin', 'create-user', 'bob', 'bob@x.test']);
    expect(parsed.options).toEqual({ password: 'pw123456' });
    expect(parsed.flags).toEqual({ port: '9000', 'data-dir': '/srv/p' });
  });

  it('a flag followed by another flag or nothing is true', () => {
    const parsed = parseCommandLine(['serve', '--dev', '--help']);
    expect(parsed.flags).toEqual({ dev: true });
    expect(parsed.options).toEqual({ help: true });
  });

  it('everything after -- is positional', () => {
    expect(parseCommandLine(['x', '--', '--not-a-flag']).positionals).toEqual(['x', '--not-a-flag']);
  });
});
