/**
 * The step supervisor: one small Node process per pipeline run (per network mode), started inside the
 * run's sandbox, that starts each step's shell on request. The sandbox's set-up (namespaces, mounts,
 * a Node start-up) is then paid once per run instead of once per step, and forks happen in a process
 * of a few MB.
 *
 * Wire format, both directions over the supervisor's stdin/stdout (relayed by the process launcher):
 * - requests, platform → supervisor: one JSON object per line (`run`, `kill`);
 * - replies, supervisor → platform: frames `[u32 length][u8 kind][u32 step id][payload]`, the payload
 *   raw output bytes for OUTPUT and JSON otherwise. Output is never re-encoded.
 *
 * Steps of one run share the sandbox: they can see each other's processes (as they share the
 * workspace). Nothing outside the run is in its view.
 */

export const FRAME = {
  ready: 0,
  started: 1,
  output: 2,
  exit: 3,
  closed: 4,
  error: 5,
} as const;

export const FRAME_HEADER_BYTES = 9;

export interface RunRequest {
  t: 'run';
  id: number;
  script: string;
  env: Record<string, string>;
  cwd: string;
  /** A fresh HOME is made under this directory (`<prefix>XXXXXX`) and set in the step's environment. */
  homeParent: string;
  homePrefix: string;
}

export interface KillRequest {
  t: 'kill';
  id: number;
  signal: 'SIGTERM' | 'SIGKILL';
}

/** Argument telling the supervisor it runs in a pid namespace of its own (it may then sweep /proc). */
export const OWN_PID_NAMESPACE_ARG = 'own-pid-namespace';

/**
 * The supervisor's program, run as `node -e` (the same from sources and from dist/, nothing to locate
 * at run time). CommonJS, no dependencies.
 *
 * - Each step is `/bin/sh -c <script>` in its own session and process group; after the shell exits
 *   the group is killed (background children do not outlive their step). Pipes still held by a
 *   process that left the group are given up after 2 s.
 * - Whenever no step is running, every other process in the sandbox (pid namespace) is killed: what
 *   escaped its group with setsid does not outlive its step either, and nothing is left running while
 *   the platform collects artifacts.
 * - stdin closing (the platform went away or disposed the run) kills everything and exits.
 * - stdout is a pipe, which Node writes synchronously: a slow reader slows the steps down through
 *   their own pipes, as when read directly.
 */
export const SUPERVISOR_SOURCE = `
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const DRAIN_MS = 2000;
const steps = new Map();
const ownPidNamespace = process.argv.includes('own-pid-namespace');
const frame = (kind, id, payload) => {
  const head = Buffer.allocUnsafe(9);
  head.writeUInt32BE(payload.length, 0);
  head[4] = kind;
  head.writeUInt32BE(id, 5);
  process.stdout.write(payload.length > 0 ? Buffer.concat([head, payload]) : head);
};
const json = (kind, id, value) => frame(kind, id, Buffer.from(JSON.stringify(value)));
const killGroup = (pid, signal) => { try { process.kill(-pid, signal); } catch {} };
const sweep = () => {
  // Only in the sandbox's own pid namespace (started by bubblewrap's init, pid 1): unsandboxed, /proc
  // is the host's.
  if (!ownPidNamespace || process.ppid !== 1) return;
  let entries = [];
  try { entries = fs.readdirSync('/proc'); } catch { return; }
  for (const e of entries) {
    if (!/^[0-9]+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid || pid === 1) continue;
    try { process.kill(pid, 'SIGKILL'); } catch {}
  }
};
const run = (m) => {
  let home;
  try {
    fs.mkdirSync(m.homeParent, { recursive: true, mode: 0o700 });
    home = fs.mkdtempSync(path.join(m.homeParent, m.homePrefix));
  } catch (err) {
    json(5, m.id, { message: 'could not create HOME: ' + err.message });
    return;
  }
  let child;
  try {
    child = spawn('/bin/sh', ['-c', m.script], {
      cwd: m.cwd, env: Object.assign({}, m.env, { HOME: home }), detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    json(5, m.id, { message: String((err && err.message) || err) });
    return;
  }
  if (child.pid === undefined) {
    child.once('error', (err) => json(5, m.id, { message: err.message }));
    return;
  }
  const step = { child, pid: child.pid, closed: false };
  steps.set(m.id, step);
  json(1, m.id, { pid: child.pid });
  const out = (data) => frame(2, m.id, data);
  child.stdout.on('data', out);
  child.stderr.on('data', out);
  child.on('error', () => {});
  let drain;
  const closed = () => {
    if (step.closed) return;
    step.closed = true;
    clearTimeout(drain);
    steps.delete(m.id);
    if (steps.size === 0) sweep();
    json(4, m.id, {});
  };
  child.on('exit', (code, signal) => {
    killGroup(step.pid, 'SIGKILL');
    json(3, m.id, { code, signal });
    drain = setTimeout(() => { child.stdout.destroy(); child.stderr.destroy(); closed(); }, DRAIN_MS);
  });
  child.on('close', closed);
};
let buffered = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (text) => {
  buffered += text;
  let nl;
  while ((nl = buffered.indexOf('\\n')) >= 0) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    if (!line) continue;
    const m = JSON.parse(line);
    if (m.t === 'run') run(m);
    else if (m.t === 'kill') { const s = steps.get(m.id); if (s) killGroup(s.pid, m.signal); }
  }
});
process.stdin.on('end', () => {
  for (const s of steps.values()) killGroup(s.pid, 'SIGKILL');
  sweep();
  process.exit(0);
});
frame(0, 0, Buffer.alloc(0));
`;
