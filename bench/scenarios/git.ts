/**
 * git: push and clone of a ≈ 50 MB repository (a few thousand commits of text plus ~40 MB of
 * incompressible binary blobs) through the platform's smart HTTP endpoints, against git's own speed
 * on the same data over the pack protocol (`file://` push, `git clone --no-local`), plus the growth
 * of the platform server's resident memory while the pack streams through it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BenchContext, ComparisonResult, Figure, Scenario } from '../run.js';
import { childEnv, json, loginToken, platformServeCommand, repoRoot } from '../run.js';

const RATIO_GOAL = 1.25;
const RSS_GOAL_MB = 64;
const RUNS = 3;
const ADMIN_USER = 'admin';
const ADMIN_PASSWORD = 'bench-admin-password';
const RSS_SAMPLE_MS = 25;

/** Shape of the generated history. */
const COMMITS = 3000;
const TEXT_FILES = 1200;
const TEXT_FILE_LINES = 100;
const BINARY_COMMITS = 36;
const BINARY_TOTAL_BYTES = 40 * 1024 * 1024;

const MB = 1024 * 1024;

/** Deterministic PRNG (mulberry32): the same repository on every run and machine. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Incompressible bytes (xorshift32), so binary blobs weigh their full size in every pack. */
function randomBytes(size: number, seed: number): Buffer {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return Buffer.from(words.buffer, 0, size);
}

interface GitRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs git with the isolated environment; `input` is streamed to stdin with back-pressure. */
function runGit(
  env: NodeJS.ProcessEnv,
  args: string[],
  options: { cwd?: string; input?: AsyncIterable<Buffer> } = {},
): Promise<GitRun> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('git', args, {
      cwd: options.cwd,
      env,
      stdio: [options.input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => {
      stdout += c.toString('utf8');
    });
    child.stderr?.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString('utf8')).slice(-20_000);
    });
    child.once('error', reject);
    child.once('close', (code) =>
      resolve({ code: code ?? 1, stdout, stderr, ms: performance.now() - started }),
    );
    const stdin = child.stdin;
    if (options.input && stdin) {
      stdin.on('error', () => {
        // git exited early: its exit code and stderr tell why
      });
      const input = options.input;
      void (async () => {
        for await (const chunk of input) {
          if (!stdin.write(chunk)) await new Promise((r) => stdin.once('drain', r));
        }
        stdin.end();
      })().catch((err: unknown) => {
        stdin.destroy();
        reject(err);
      });
    }
  });
}

async function gitOk(
  env: NodeJS.ProcessEnv,
  args: string[],
  options: { cwd?: string; input?: AsyncIterable<Buffer> } = {},
): Promise<GitRun> {
  const r = await runGit(env, args, options);
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r;
}

/**
 * The fast-import stream: one commit creating TEXT_FILES text files, then commits each rewriting a
 * few lines of one or two of them; BINARY_COMMITS of them also add or replace a random binary blob.
 * A release branch and a tag every few hundred commits give `--mirror` more than one ref.
 */
async function* fastImportStream(progress: (m: string) => void): AsyncGenerator<Buffer> {
  const rand = prng(0x5eed);
  const pick = (n: number) => Math.floor(rand() * n);
  const vocabulary = Array.from({ length: 5000 }, () => {
    const len = 3 + pick(8);
    let w = '';
    for (let i = 0; i < len; i++) w += String.fromCharCode(97 + pick(26));
    return w;
  });
  const line = () => {
    const n = 6 + pick(10);
    const words: string[] = [];
    for (let i = 0; i < n; i++) words.push(vocabulary[pick(vocabulary.length)]!);
    return `${words.join(' ')} ${pick(1_000_000)}`;
  };
  const files = Array.from({ length: TEXT_FILES }, (_, i) => ({
    path: `src/module-${String(i % 30).padStart(2, '0')}/file-${String(i).padStart(3, '0')}.txt`,
    lines: Array.from({ length: TEXT_FILE_LINES }, line),
  }));
  const binaryEvery = Math.floor(COMMITS / BINARY_COMMITS);
  const binarySize = Math.floor(BINARY_TOTAL_BYTES / BINARY_COMMITS);
  const data = (content: Buffer | string) => {
    const body = typeof content === 'string' ? Buffer.from(content) : content;
    return Buffer.concat([Buffer.from(`data ${body.length}\n`), body, Buffer.from('\n')]);
  };
  const modify = (file: { path: string; lines: string[] }) =>
    Buffer.concat([Buffer.from(`M 100644 inline ${file.path}\n`), data(`${file.lines.join('\n')}\n`)]);

  for (let c = 1; c <= COMMITS; c++) {
    const when = 1_600_000_000 + c * 3600;
    const parts: Buffer[] = [
      Buffer.from(
        `commit refs/heads/main\nmark :${c}\nauthor Bench <bench@example.test> ${when} +0000\ncommitter Bench <bench@example.test> ${when} +0000\n`,
      ),
      data(`change ${c}: ${line()}\n`),
    ];
    if (c > 1) parts.push(Buffer.from(`from :${c - 1}\n`));
    if (c === 1) {
      for (const f of files) parts.push(modify(f));
    } else {
      const touched = 1 + pick(2);
      for (let t = 0; t < touched; t++) {
        const f = files[pick(files.length)]!;
        const edits = 1 + pick(4);
        for (let e = 0; e < edits; e++) f.lines[pick(f.lines.length)] = line();
        f.lines.push(line());
        parts.push(modify(f));
      }
    }
    if (c % binaryEvery === 0) {
      const k = c / binaryEvery;
      // every third binary replaces an earlier path: history keeps both versions
      const slot = k % 3 === 0 ? k - 2 : k;
      parts.push(
        Buffer.from(`M 100644 inline assets/blob-${String(slot).padStart(2, '0')}.bin\n`),
        data(randomBytes(binarySize, 0x9e3779b9 ^ c)),
      );
    }
    parts.push(Buffer.from('\n'));
    if (c % 1000 === 0) parts.push(Buffer.from(`reset refs/heads/release-${c / 1000}\nfrom :${c}\n\n`));
    if (c % 300 === 0) parts.push(Buffer.from(`reset refs/tags/v0.${c / 300}\nfrom :${c}\n\n`));
    if (c % 500 === 0) progress(`generate: ${c}/${COMMITS} commits streamed to git fast-import`);
    yield Buffer.concat(parts);
  }
  yield Buffer.from('done\n');
}

/** Samples VmRSS of one process from /proc (Linux); null elsewhere. */
function rssBytes(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

interface RssWindow {
  baselineBytes: number;
  peakBytes: number;
  samples: number;
  /** ms from the start until `probe` first answered true (null: never seen). */
  probeMs: number | null;
}

/** Runs `work` while sampling the RSS of `pid` every RSS_SAMPLE_MS. */
async function withRssSampling<T>(
  pid: number,
  work: () => Promise<T>,
  probe?: () => boolean,
): Promise<[T, RssWindow | null]> {
  const baseline = rssBytes(pid);
  if (baseline === null) return [await work(), null];
  const started = performance.now();
  const window: RssWindow = { baselineBytes: baseline, peakBytes: baseline, samples: 1, probeMs: null };
  const timer = setInterval(() => {
    if (probe && window.probeMs === null && probe()) window.probeMs = performance.now() - started;
    const v = rssBytes(pid);
    if (v === null) return;
    window.samples++;
    if (v > window.peakBytes) window.peakBytes = v;
  }, RSS_SAMPLE_MS);
  try {
    const result = await work();
    const last = rssBytes(pid);
    if (last !== null && last > window.peakBytes) window.peakBytes = last;
    return [result, window];
  } finally {
    clearInterval(timer);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const seconds = (ms: number) => (ms / 1000).toFixed(2);
const mb = (bytes: number) => bytes / MB;

export const git: Scenario = {
  name: 'git',
  description:
    'push --mirror and clone of a ≈ 50 MB repository over smart HTTP (embedded platform) vs. git itself over the pack protocol',
  async run(ctx: BenchContext): Promise<ComparisonResult> {
    const dir = ctx.tempDir('platform-bench-git-');
    const home = path.join(dir, 'home');
    const gitEnv: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_TERMINAL_PROMPT: '0',
      GIT_ASKPASS: '',
      LANG: 'C',
    };
    mkdirSync(home);

    // 1. The repository, generated with fast-import, then repacked as a real repository would be.
    const source = path.join(dir, 'source.git');
    await gitOk(gitEnv, ['init', '--quiet', '--bare', '--initial-branch=main', source]);
    ctx.progress(
      `generate: ${COMMITS} commits over ${TEXT_FILES} text files + ${BINARY_COMMITS} random binary blobs (${mb(BINARY_TOTAL_BYTES).toFixed(0)} MB)`,
    );
    // Blobs above the threshold (the random binaries) are stored without delta attempts.
    const imported = await gitOk(gitEnv, ['fast-import', '--quiet', '--big-file-threshold=256k'], {
      cwd: source,
      input: fastImportStream(ctx.progress),
    });
    ctx.progress(`generate: fast-import done in ${seconds(imported.ms)} s; repacking (git repack -a -d -f)`);
    // As a repository with binary assets would say: no delta search on random data (also keeps repack fast).
    writeFileSync(path.join(source, 'info', 'attributes'), '*.bin -delta\n');
    const repacked = await gitOk(gitEnv, ['repack', '-a', '-d', '-f', '-q'], { cwd: source });
    const counts = Object.fromEntries(
      (await gitOk(gitEnv, ['count-objects', '-v'], { cwd: source })).stdout
        .trim()
        .split('\n')
        .map((l) => {
          const [k, v] = l.split(': ');
          return [k, Number(v)];
        }),
    ) as Record<string, number>;
    const refCount = (await gitOk(gitEnv, ['for-each-ref'], { cwd: source })).stdout
      .trim()
      .split('\n').length;
    const packMb = (counts['size-pack'] ?? 0) / 1024;
    ctx.progress(
      `generate: repacked in ${seconds(repacked.ms)} s — ${counts['in-pack']} objects, pack ${packMb.toFixed(1)} MB, ${refCount} refs`,
    );

    // 2. The platform, embedded, with a token and one empty project per push run.
    const port = await ctx.freePort();
    const base = `http://127.0.0.1:${port}`;
    const dataDir = path.join(dir, 'data');
    ctx.progress('platform: starting (first start of a fresh data dir runs initdb + migrations)');
    const platform = ctx.spawnServer(...(await platformServeCommand((m) => ctx.progress(m))), {
      cwd: repoRoot,
      env: childEnv({
        PLATFORM_DATA_DIR: dataDir,
        PLATFORM_HOST: '127.0.0.1',
        PLATFORM_PORT: String(port),
        PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
        PLATFORM_LOG_LEVEL: 'warn',
      }),
    });
    await platform.waitReady(`${base}/readyz`, 180_000);
    const serverPid = platform.child.pid!;
    // node runs dist/src/main.js itself: this pid is the server, not a wrapper
    const cmdline = readFileSync(`/proc/${serverPid}/cmdline`, 'utf8').split('\0').join(' ');
    if (!cmdline.includes('src/main.js')) throw new Error(`pid ${serverPid} is not the server: ${cmdline}`);

    const token = await loginToken(base, ADMIN_USER, ADMIN_PASSWORD, 'bench-git');
    const projects: { url: string; repoPath: string }[] = [];
    for (let i = 1; i <= RUNS; i++) {
      const p = await json<{ clone_url: string; full_name: string }>(
        await fetch(`${base}/api/projects`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ name: `bench-push-${i}` }),
        }),
        'create project',
      );
      // clone_url is under the public URL; the bench talks to the loopback port it chose
      const url = new URL(new URL(p.clone_url).pathname, base);
      url.username = encodeURIComponent(ADMIN_USER);
      url.password = encodeURIComponent(token);
      projects.push({ url: url.toString(), repoPath: path.join(dataDir, 'repos', `${p.full_name}.git`) });
    }

    // 3. Push: the whole history into an empty repository, interleaved, median of RUNS.
    const pushPlatformMs: number[] = [];
    const pushGitMs: number[] = [];
    const pushRss: RssWindow[] = [];
    const localBare: string[] = [];
    for (let i = 0; i < RUNS; i++) {
      const bare = path.join(dir, `reference-${i + 1}.git`);
      await gitOk(gitEnv, ['init', '--quiet', '--bare', bare]);
      localBare.push(bare);
      const ref = await gitOk(gitEnv, ['push', '--quiet', '--mirror', `file://${bare}`], { cwd: source });
      pushGitMs.push(ref.ms);
      // The moment receive-pack has moved the refs: what comes after is the platform's post-push work.
      const mainRef = path.join(projects[i]!.repoPath, 'refs', 'heads', 'main');
      const [plat, rss] = await withRssSampling(
        serverPid,
        () => gitOk(gitEnv, ['push', '--quiet', '--mirror', projects[i]!.url], { cwd: source }),
        () => existsSync(mainRef),
      );
      pushPlatformMs.push(plat.ms);
      if (rss) pushRss.push(rss);
      ctx.progress(
        `push ${i + 1}/${RUNS}: git file:// ${seconds(ref.ms)} s, platform ${seconds(plat.ms)} s${
          rss
            ? `, server RSS ${mb(rss.baselineBytes).toFixed(1)} → peak ${mb(rss.peakBytes).toFixed(1)} MB, refs moved at ${rss.probeMs === null ? '?' : seconds(rss.probeMs)} s`
            : ''
        }`,
      );
    }
    const pushed = (await gitOk(gitEnv, ['for-each-ref'], { cwd: projects[0]!.repoPath })).stdout;
    const expected = (await gitOk(gitEnv, ['for-each-ref'], { cwd: source })).stdout;
    if (pushed !== expected) throw new Error('the platform repository does not hold the pushed refs');

    // 4. Clone: the same on-disk repository (the platform's, after the push) both ways.
    const cloneSource = existsSync(projects[0]!.repoPath) ? projects[0]!.repoPath : localBare[0]!;
    const cloneGitMs: number[] = [];
    const clonePlatformMs: number[] = [];
    const cloneRss: RssWindow[] = [];
    for (let i = 0; i < RUNS; i++) {
      const a = path.join(dir, `clone-git-${i}.git`);
      const ref = await gitOk(gitEnv, ['clone', '--quiet', '--bare', '--no-local', cloneSource, a]);
      rmSync(a, { recursive: true, force: true });
      cloneGitMs.push(ref.ms);
      const b = path.join(dir, `clone-platform-${i}.git`);
      const [plat, rss] = await withRssSampling(serverPid, () =>
        gitOk(gitEnv, ['clone', '--quiet', '--bare', projects[0]!.url, b]),
      );
      rmSync(b, { recursive: true, force: true });
      clonePlatformMs.push(plat.ms);
      if (rss) cloneRss.push(rss);
      ctx.progress(
        `clone ${i + 1}/${RUNS}: git --no-local ${seconds(ref.ms)} s, platform ${seconds(plat.ms)} s`,
      );
    }

    // 5. Figures.
    const timing = (
      name: string,
      refLabel: string,
      refRuns: number[],
      platLabel: string,
      platRuns: number[],
    ): Figure => {
      const reference = median(refRuns) / 1000;
      const value = median(platRuns) / 1000;
      const ratio = value / reference;
      const runs = (xs: number[]) => `runs ${xs.map(seconds).join(', ')} s`;
      return {
        name,
        unit: 's',
        reference: { label: refLabel, value: reference, detail: runs(refRuns) },
        platform: { label: platLabel, value, detail: runs(platRuns) },
        ratio,
        goal: { on: 'ratio', op: '<=', value: RATIO_GOAL },
        met: ratio <= RATIO_GOAL,
      };
    };
    const figures: Figure[] = [
      timing(
        'push',
        'git push --mirror file:// (empty bare repo)',
        pushGitMs,
        'platform git push --mirror http://',
        pushPlatformMs,
      ),
      timing(
        'clone',
        'git clone --bare --no-local <repo path>',
        cloneGitMs,
        'platform git clone --bare http://',
        clonePlatformMs,
      ),
    ];
    const growth = (w: RssWindow) => w.peakBytes - w.baselineBytes;
    const worst = (ws: RssWindow[]) => ws.reduce((a, b) => (growth(b) > growth(a) ? b : a));
    if (pushRss.length > 0) {
      const w = worst(pushRss);
      figures.push({
        name: 'server RSS growth during push',
        unit: 'MB',
        reference: null,
        platform: {
          label: 'platform peak VmRSS − baseline (worst run)',
          value: mb(growth(w)),
          detail: `baseline ${mb(w.baselineBytes).toFixed(1)} MB, peak ${mb(w.peakBytes).toFixed(1)} MB, ${w.samples} samples; runs ${pushRss.map((x) => mb(growth(x)).toFixed(1)).join(', ')} MB`,
        },
        ratio: null,
        goal: { on: 'value', op: '<', value: RSS_GOAL_MB },
        met: mb(growth(w)) < RSS_GOAL_MB,
      });
    }
    const notes = [
      `repository: ${COMMITS} commits, ${refCount} refs, ${counts['in-pack']} objects, pack ${packMb.toFixed(1)} MB (fast-import ${seconds(imported.ms)} s + repack -adf ${seconds(repacked.ms)} s, *.bin -delta)`,
      `median of ${RUNS} runs each, reference and platform interleaved; each push goes into a fresh empty repository (one project per run)`,
      `clones are --bare (transfer + index-pack; a checkout is the same local work on both sides and would only dilute the ratio); the reference clones ${cloneSource === localBare[0] ? 'the local bare repo' : "the platform's own repository directory"} with --no-local (upload-pack over the pack protocol)`,
      'git children run with an isolated environment (temp HOME, GIT_CONFIG_NOSYSTEM=1, GIT_TERMINAL_PROMPT=0); credentials as user:token in the URL (HTTP Basic)',
      `RSS is the node server process only (pid ${serverPid}, /proc VmRSS every ${RSS_SAMPLE_MS} ms); the git processes it spawns are not counted`,
    ];
    const refsMoved = pushRss.map((w, i) =>
      w.probeMs === null ? '?' : `${seconds(w.probeMs)}/${seconds(pushPlatformMs[i]!)}`,
    );
    notes.push(
      `platform push: refs/heads/main appeared in the repository at (s, of the run's total) ${refsMoved.join(', ')}; the rest is the client's wrap-up (push events, audit and pipeline triggers run after the response)`,
    );
    if (cloneRss.length > 0) {
      const w = worst(cloneRss);
      notes.push(
        `server RSS growth during clone (worst run): ${mb(growth(w)).toFixed(1)} MB (baseline ${mb(w.baselineBytes).toFixed(1)} MB)`,
      );
    }
    return {
      description: this.description,
      figures,
      met: figures.every((f) => f.met),
      notes,
    };
  },
};
