import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

/** What `platform login` stores: the platform's URL and an API token for it. */
export interface StoredLogin {
  url: string;
  token: string;
  user: string;
}

/** `$XDG_CONFIG_HOME/platform/credentials.json`, or `~/.config/platform/credentials.json`. */
export function credentialsFile(env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME)
      ? env.XDG_CONFIG_HOME
      : path.join(env.HOME ?? homedir(), '.config');
  return path.join(base, 'platform', 'credentials.json');
}

export function readLogin(env: NodeJS.ProcessEnv = process.env): StoredLogin | null {
  let text: string;
  try {
    text = readFileSync(credentialsFile(env), 'utf8');
  } catch {
    return null;
  }
  try {
    const value = JSON.parse(text) as Partial<StoredLogin>;
    if (typeof value.url === 'string' && typeof value.token === 'string')
      return { url: value.url, token: value.token, user: String(value.user ?? '') };
  } catch {
    // a damaged file reads as no login: `platform login` writes it again
  }
  return null;
}

/** Written owner-only (0600, directory 0700), also when the file existed with wider rights. */
export function writeLogin(login: StoredLogin, env: NodeJS.ProcessEnv = process.env): string {
  const file = credentialsFile(env);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const fd = openSync(file, 'w', 0o600);
  try {
    chmodSync(file, 0o600);
    writeSync(fd, `${JSON.stringify(login, null, 2)}\n`);
  } finally {
    closeSync(fd);
  }
  return file;
}
