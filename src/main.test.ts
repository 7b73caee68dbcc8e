import { describe, expect, it, vi } from 'vitest';
import { commandHelp, commandNames, globalHelp, UsageError } from './cli/help.js';
import { main, parseCommandLine } from './main.js';

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

describe('help and usage errors', () => {
  async function run(argv: string[]): Promise<{ code?: number; out: string; error?: Error }> {
    let out = '';
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out += String(chunk);
      return true;
    });
    try {
      return { code: await main(argv), out };
    } catch (error) {
      return { out, error: error as Error };
    } finally {
      write.mockRestore();
    }
  }

  it.each(commandNames.filter((c) => c !== 'help'))(
    '`%s --help` prints that command’s usage',
    async (name) => {
      const result = await run([name, '--help']);
      expect(result.code).toBe(0);
      expect(result.out).toBe(commandHelp(name));
      expect(result.out).toMatch(new RegExp(`^Usage: platform ${name}`));
      expect(result.out).not.toContain('Commands:');
    },
  );

  it('`admin --help` lists its subcommands and their options; -h and `help admin` say the same', async () => {
    const result = await run(['admin', '--help']);
    for (const text of ['admin create-user', 'admin reset-password', 'admin create-token', '--scopes'])
      expect(result.out).toContain(text);
    expect((await run(['admin', '-h'])).out).toBe(result.out);
    expect((await run(['help', 'admin'])).out).toBe(result.out);
  });

  it('`--help` alone and no command print the global help', async () => {
    expect((await run(['--help'])).out).toBe(globalHelp());
    expect((await run([])).out).toBe(globalHelp());
    for (const name of commandNames) expect(globalHelp()).toContain(`  ${name} `);
  });

  it('an unknown command gets a did-you-mean and where the usage is', async () => {
    const { error } = await run(['serv']);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).describe()).toBe(
      "platform: unknown command 'serv'; did you mean 'serve'?\nRun `platform --help` for the usage.\n",
    );
    expect((await run(['frobnicate'])).error?.message).toBe("unknown command 'frobnicate'");
  });

  it('an unknown admin subcommand gets a did-you-mean pointing at `admin --help`', async () => {
    const { error } = await run(['admin', 'create-usr']);
    expect((error as UsageError).describe()).toBe(
      "platform: unknown admin command 'create-usr'; did you mean 'create-user'?\nRun `platform admin --help` for the usage.\n",
    );
  });
});
