import { hostname } from 'node:os';
import { createInterface } from 'node:readline';
import { UsageError } from '../cli/help.js';
import { ApiClient, apiError, ClientError, EXIT } from './api.js';
import { stringOption } from './args.js';
import type { CommandContext } from './context.js';
import { writeLogin } from './credentials.js';

async function readSecretLine(prompt: string, ctx: CommandContext): Promise<string> {
  if ((ctx.stdin as { isTTY?: boolean }).isTTY) ctx.io.err(prompt);
  const rl = createInterface({ input: ctx.stdin, terminal: false });
  try {
    for await (const line of rl) return line.replace(/\r$/, '');
  } finally {
    rl.close();
  }
  throw new UsageError('no password on stdin', 'login');
}

/**
 * `platform login <url>`: with `--token` (or PLATFORM_TOKEN) the token is checked and stored; with
 * `--user` the password is read from stdin, a session signs in, and a new API token is created for
 * this machine. Stored owner-only (0600) in the config directory.
 */
export async function login(ctx: CommandContext): Promise<number> {
  const url = ctx.args.positionals[0] ?? stringOption(ctx.args, 'url');
  if (!url) throw new UsageError('login needs the platform <url>', 'login');
  let base: string;
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('scheme');
    base = parsed.origin + parsed.pathname.replace(/\/+$/, '');
  } catch {
    throw new UsageError(`not an http(s) URL: '${url}'`, 'login');
  }
  let token = stringOption(ctx.args, 'token') ?? ctx.env.PLATFORM_TOKEN;
  const user = stringOption(ctx.args, 'user');
  if (!token && !user)
    throw new UsageError('login needs --token <token> or --user <name> (password on stdin)', 'login');
  if (!token && user) {
    const password = await readSecretLine(`password for ${user}: `, ctx);
    token = await createToken(base, user, password);
  }
  const api = new ApiClient(base, token!);
  const me = await api.request<{ user?: { name?: string }; name?: string }>('GET', '/api/auth/me');
  const name = me.user?.name ?? me.name ?? '';
  const file = writeLogin({ url: base, token: token!, user: name }, ctx.env);
  if (ctx.asJson) ctx.io.out(`${JSON.stringify({ url: base, user: name, credentials: file })}\n`);
  else ctx.io.out(`logged in to ${base} as ${name}; token stored in ${file}\n`);
  return EXIT.ok;
}

async function createToken(base: string, user: string, password: string): Promise<string> {
  const call = async (path: string, body: unknown, cookie?: string) => {
    try {
      return await fetch(new URL(path, `${base}/`), {
        method: 'POST',
        // A cookie-authenticated mutation must say it comes from the platform's own origin.
        headers: {
          'content-type': 'application/json',
          ...(cookie ? { cookie, origin: new URL(base).origin } : {}),
        },
        body: JSON.stringify(body),
      });
    } catch (err) {
      throw new ClientError(`cannot reach ${base}: ${(err as Error).message}`, EXIT.unavailable);
    }
  };
  const signIn = await call('api/auth/login', { name: user, password });
  if (!signIn.ok) throw apiError(signIn.status, await signIn.json().catch(() => undefined));
  const cookie = signIn.headers.get('set-cookie')?.split(';')[0];
  if (!cookie) throw new ClientError('the sign-in answered without a session', EXIT.error);
  const created = await call('api/tokens', { name: `cli@${hostname()}` }, cookie);
  const body = (await created.json().catch(() => undefined)) as { token?: string } | undefined;
  if (!created.ok || !body?.token) throw apiError(created.status, body);
  // The session was only the way to the token.
  await call('api/auth/logout', {}, cookie).catch(() => undefined);
  return body.token;
}
