/**
 * Faults at random moments (issue #22 item 4): a seeded schedule of runs against one real
 * `platform serve` on one data directory (recovery is cumulative). Each run starts one of six
 * activities — push, merge, pipeline, OTLP ingest, deploy cut-over, agent session — SIGKILLs the
 * platform's process group at a random delay, checks that nothing it started survives it, starts the
 * platform again and checks the invariants over everything done so far:
 *   - `git fsck --full --strict` clean for every repository of the data directory;
 *   - every acknowledged push (ref = the pushed commit), merge (MR merged, target contains the
 *     source), OTLP record (queryable) and agent session (its row) is there;
 *   - after the recovery window no pipeline, step, deployment or agent session is left in a
 *     running state (pending/running, syncing);
 *   - no orphan process: every process carrying the run's marker (command line or environment:
 *     steps, deployed apps, agents and their children) is gone once the platform is killed.
 *
 * PLATFORM_FAULT_SEED reproduces a schedule (the seed is printed); PLATFORM_FAULT_RUNS sets the number
 * of runs (default 12 for CI; the full run is `PLATFORM_FAULT_RUNS=50 npx vitest run --project
 * embedded test/faults.test.ts`).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually, servicesMissing, storeMode } from './helpers/app.js';
import { authUrl, git, gitOk } from './helpers/git.js';
import { killAllChildren, makeTempDir, removeTempDirs } from './helpers/process.js';
import {
  type ApiCall,
  apiClient,
  fsckRepositories,
  gitIn,
  killMarked,
  markedProcesses,
  markedProcessesAfter,
  RestartablePlatform,
  seededRandom,
} from './helpers/restart.js';

const ADMIN_PASSWORD = 'faults-admin-password';
const RUNS = Number(process.env.PLATFORM_FAULT_RUNS ?? 12);
const SEED = Number(process.env.PLATFORM_FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** Longest wait for the restarted platform to settle every running row (agent lease 15 s + reaper). */
const RECOVERY_MS = 120_000;
const ACTIVITIES = ['push', 'merge', 'pipeline', 'otlp', 'deploy', 'agent'] as const;
type Activity = (typeof ACTIVITIES)[number];

const fixtures = path.dirname(fileURLToPath(new URL('./fixtures/fake-claude.mjs', import.meta.url)));
const APP_JS = readFileSync(path.join(fixtures, 'faults', 'app', 'server.js'), 'utf8');

interface RunRecord {
  run: number;
  activity: Activity;
  delayMs: number;
  /** The activity's acknowledgement came before the kill. */
  acked: boolean;
  detail: string;
  /** Processes carrying the marker just before the kill. */
  markedAtKill: number;
  orphans: number;
  recoveryMs: number;
  restartMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(servicesMissing)(`faults at random moments (${storeMode})`, () => {
  const marker = `faultmark${randomBytes(5).toString('hex')}`;
  let platform: RestartablePlatform | undefined;

  afterAll(async () => {
    await killAllChildren();
    killMarked(marker);
    await platform?.dispose();
    removeTempDirs();
  });

  it(
    `${RUNS} SIGKILLs at random moments: fsck clean, nothing acknowledged lost, nothing stuck, no orphans`,
    async () => {
      const random = seededRandom(SEED);
      const between = (min: number, max: number) => Math.floor(min + random() * (max - min));
      console.log(
        `[faults ${storeMode}] seed ${SEED} (PLATFORM_FAULT_SEED=${SEED} reproduces), ${RUNS} runs`,
      );
      // Round-robin over a seeded shuffle of the six: every activity gets its share of the runs.
      const schedule: Activity[] = [];
      while (schedule.length < RUNS) {
        const block = [...ACTIVITIES];
        for (let i = block.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [block[i], block[j]] = [block[j]!, block[i]!];
        }
        schedule.push(...block);
      }
      schedule.length = RUNS;

      const p = await RestartablePlatform.create({
        prefix: 'platform-faults-',
        adminPassword: ADMIN_PASSWORD,
        env: {
          PLATFORM_PIPELINE_LEASE_SECONDS: '5',
          // Acknowledgements wait for the flush: a kill finds records buffered.
          PLATFORM_OBSERVE_FLUSH_MS: '300',
          PLATFORM_RUNNER_READONLY_PATHS: fixtures,
        },
      });
      platform = p;
      const started = Date.now();
      await p.start();
      let admin = await p.adminApi();
      const tokenRes = await admin('POST', '/api/tokens', { name: 'faults' });
      expect(tokenRes.status).toBe(201);
      const token = tokenRes.body.token as string;
      const api: ApiCall = apiClient(p.base, { token });
      expect(
        (
          await admin('PATCH', '/api/agent-settings', {
            claude_command: path.join(fixtures, 'fake-claude.mjs'),
          })
        ).status,
      ).toBe(200);

      const projects: Record<string, string> = {};
      const work: Record<string, string> = {};
      const workRoot = makeTempDir('platform-faults-work-');
      for (const name of ['f-git', 'f-ci', 'f-deploy', 'f-agent']) {
        const created = await admin('POST', '/api/projects', { name });
        expect(created.status, JSON.stringify(created.body)).toBe(201);
        projects[name] = created.body.id as string;
        const dir = path.join(workRoot, name);
        await gitOk(['clone', '-q', authUrl(p.base, 'admin', token, `/admin/${name}.git`), dir]);
        await gitOk(['checkout', '-q', '-B', 'main'], { cwd: dir });
        work[name] = dir;
      }
      const repoDir = (name: string) => path.join(p.dataDir, 'repos', 'admin', `${name}.git`);
      const commitAll = async (dir: string, message: string) => {
        await gitOk(['add', '-A'], { cwd: dir });
        await gitOk(['commit', '-q', '--allow-empty', '-m', message], { cwd: dir });
        return (await gitOk(['rev-parse', 'HEAD'], { cwd: dir })).trim();
      };
      const write = (dir: string, files: Record<string, string | Buffer>) => {
        for (const [name, content] of Object.entries(files)) {
          mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
          writeFileSync(path.join(dir, name), content);
        }
      };
      // f-git: a main branch to merge into; f-agent: a main branch to clone; the agent gets the marker.
      for (const name of ['f-git', 'f-agent']) {
        write(work[name]!, { 'README.md': `${name}\n` });
        await commitAll(work[name]!, 'init');
        await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: work[name] });
      }
      expect(
        (
          await api('POST', `/api/projects/${projects['f-agent']}/secrets`, {
            name: 'FAULT_MARKER',
            value: marker,
            scope: 'agent',
          })
        ).status,
      ).toBe(201);
      write(work['f-ci']!, {
        '.platform.yaml': `pipeline:\n  steps:\n    - name: build\n      environment: { FAULT_MARKER: "${marker}" }\n      commands: ["sleep 2", "echo built"]\n    - name: check\n      depends_on: [build]\n      environment: { FAULT_MARKER: "${marker}" }\n      commands: ["sleep 1"]\n`,
      });
      write(work['f-deploy']!, {
        '.platform.yaml':
          'pipeline:\n  steps:\n    - name: bundle\n      commands: ["tar czf app.tgz -C app ."]\n      publish: { artifact: app.tgz, environment: staging }\n',
        'app/server.js': APP_JS,
        'deploy/app.yaml': `kind: LocalProcess\ncommand: node\nargs: [server.js, "${marker}-{{ values.version }}"]\nenv:\n  FAULT_MARKER: "${marker}"\n  VERSION: "{{ values.version }}"\n  READY_AFTER_MS: "{{ values.ready_after_ms }}"\nhealth_path: /health\nreadiness_timeout_seconds: 60\n`,
      });

      // What was acknowledged, over all runs.
      const pushes: { branch: string; sha: string }[] = [];
      const unackedPushes: { branch: string; sha: string }[] = [];
      const merges: { number: number; source: string }[] = [];
      const unackedMerges: { number: number; source: string }[] = [];
      const otlpServices: { service: string; messages: string[] }[] = [];
      const sessions: string[] = [];
      const ciPushes: string[] = [];
      const deployVersions = new Map<string, string>(); // commit sha → version
      const records: RunRecord[] = [];
      const problems: string[] = [];

      let markedAtKill = 0;
      const runActivity = async (
        run: number,
        activity: Activity,
      ): Promise<Omit<RunRecord, 'orphans' | 'recoveryMs' | 'restartMs' | 'markedAtKill'>> => {
        const server = p.server!;
        const killAfter = async (delayMs: number) => {
          await sleep(delayMs);
          // What the platform runs right now (steps, apps, agents): what must die with it.
          markedAtKill = markedProcesses(marker).length;
          await p.kill();
        };
        switch (activity) {
          case 'push': {
            const dir = work['f-git']!;
            const branch = `push-${run}`;
            await gitOk(['checkout', '-q', '-B', branch, 'origin/main'], { cwd: dir });
            write(dir, {
              [`blob-${run}.bin`]: randomBytes(between(256, 4096) * 1024),
              [`push-${run}.txt`]: `${run}\n`,
            });
            const sha = await commitAll(dir, `push ${run}`);
            // A push of a few MB takes a few hundred ms here: most kills land before or inside it.
            const delayMs = between(0, 700);
            const t0 = Date.now();
            const pushing = git(['push', '-q', 'origin', `HEAD:refs/heads/${branch}`], { cwd: dir }).then(
              (r) => ({ ...r, ms: Date.now() - t0 }),
            );
            await killAfter(delayMs);
            const r = await pushing;
            const acked = r.code === 0;
            (acked ? pushes : unackedPushes).push({ branch, sha });
            return {
              run,
              activity,
              delayMs,
              acked,
              detail: acked ? `push acknowledged after ${r.ms} ms` : `push cut (exit ${r.code})`,
            };
          }
          case 'merge': {
            const dir = work['f-git']!;
            await gitOk(['fetch', '-q', 'origin', 'main'], { cwd: dir });
            const branch = `mr-${run}`;
            await gitOk(['checkout', '-q', '-B', branch, 'origin/main'], { cwd: dir });
            write(dir, { [`mr-${run}.txt`]: `merge request ${run}\n` });
            const source = await commitAll(dir, `mr ${run}`);
            await gitOk(['push', '-q', 'origin', `HEAD:refs/heads/${branch}`], { cwd: dir });
            const mr = await api('POST', `/api/projects/${projects['f-git']}/merge-requests`, {
              source_branch: branch,
              target_branch: 'main',
              title: `fault run ${run}`,
            });
            expect(mr.status, JSON.stringify(mr.body)).toBe(201);
            const number = mr.body.number as number;
            // A merge answers within ~100-200 ms here: the window covers before, inside and just after.
            const delayMs = between(0, 300);
            const t0 = Date.now();
            const merging = api(
              'POST',
              `/api/projects/${projects['f-git']}/merge-requests/${number}/merge`,
              {},
            )
              .then((r) => ({ ...r, ms: Date.now() - t0 }))
              .catch((err: Error) => ({ status: 0, body: { error: err.message }, ms: Date.now() - t0 }));
            await killAfter(delayMs);
            const r = await merging;
            const acked = r.status === 200;
            if (!acked && r.status !== 0)
              problems.push(`run ${run}: merge answered ${r.status} ${JSON.stringify(r.body)}`);
            (acked ? merges : unackedMerges).push({ number, source });
            return {
              run,
              activity,
              delayMs,
              acked,
              detail: acked ? `merge acknowledged after ${r.ms} ms` : 'merge cut',
            };
          }
          case 'pipeline': {
            const dir = work['f-ci']!;
            write(dir, { 'run.txt': `${run}\n` });
            const sha = await commitAll(dir, `ci ${run}`);
            const pushed = await git(['push', 'origin', 'HEAD:refs/heads/main'], { cwd: dir });
            expect(pushed.code, pushed.stderr).toBe(0);
            pushes.push({ branch: 'main@f-ci', sha });
            ciPushes.push(sha);
            // The pipeline takes ~3 s (two steps): the kill lands before, during or after them.
            const delayMs = between(0, 4500);
            await killAfter(delayMs);
            return {
              run,
              activity,
              delayMs,
              acked: true,
              detail: /Pipeline #/.test(pushed.stderr) ? 'pipeline announced' : 'pipeline not announced',
            };
          }
          case 'otlp': {
            const service = `faults-${run}`;
            const acknowledged: string[] = [];
            let stop = false;
            let refused = 0;
            const worker = async (w: number) => {
              for (let i = 0; !stop && !server.hasExited; i++) {
                const messages = Array.from({ length: 20 }, (_, k) => `${service}-${w}-${i}-${k}`);
                const body = {
                  resourceLogs: [
                    {
                      resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
                      scopeLogs: [
                        {
                          logRecords: messages.map((m) => ({
                            timeUnixNano: String(BigInt(Date.now()) * 1_000_000n),
                            severityNumber: 9,
                            body: { stringValue: m },
                          })),
                        },
                      ],
                    },
                  ],
                };
                try {
                  const res = await fetch(`${p.base}/v1/logs`, {
                    method: 'POST',
                    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
                    body: JSON.stringify(body),
                  });
                  await res.arrayBuffer();
                  if (res.status === 200) acknowledged.push(...messages);
                  else refused++;
                } catch {
                  return;
                }
              }
            };
            const workers = Array.from({ length: 4 }, (_, w) => worker(w));
            const delayMs = between(300, 2500);
            await killAfter(delayMs);
            stop = true;
            await Promise.all(workers);
            if (refused > 0) problems.push(`run ${run}: ${refused} OTLP exports refused`);
            otlpServices.push({ service, messages: acknowledged });
            return {
              run,
              activity,
              delayMs,
              acked: acknowledged.length > 0,
              detail: `${acknowledged.length} records acknowledged`,
            };
          }
          case 'deploy': {
            const dir = work['f-deploy']!;
            const version = `v${run}`;
            write(dir, {
              'deploy/values.yaml': `version: ${version}\nready_after_ms: ${between(500, 3000)}\n`,
            });
            const sha = await commitAll(dir, `release ${version}`);
            const pushed = await git(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: dir });
            expect(pushed.code, pushed.stderr).toBe(0);
            pushes.push({ branch: 'main@f-deploy', sha });
            deployVersions.set(sha, version);
            // The cut-over has begun once the new version's process runs (not healthy yet).
            await eventually(
              async () => {
                if (markedProcesses(`${marker}-${version}`).length > 0) return true;
                await sleep(100);
                return false;
              },
              120_000,
              `${version} started`,
            );
            const delayMs = between(0, 3000);
            await killAfter(delayMs);
            return { run, activity, delayMs, acked: true, detail: `kill during the cut-over to ${version}` };
          }
          case 'agent': {
            const created = await api('POST', `/api/projects/${projects['f-agent']}/sessions`, {
              prompt: `[scenario:work] fault run ${run}`,
            });
            expect(created.status, JSON.stringify(created.body)).toBe(201);
            sessions.push(created.body.id as string);
            const delayMs = between(0, 6000);
            await killAfter(delayMs);
            return { run, activity, delayMs, acked: true, detail: 'session created' };
          }
        }
      };

      const stuckRows = async () =>
        p.query<{ kind: string; n: string }>(
          `select 'pipeline' as kind, count(*)::text as n from pipelines where status in ('pending', 'running')
         union all select 'step', count(*)::text from pipeline_steps where status in ('pending', 'running')
         union all select 'deployment', count(*)::text from deployments where current_status in ('pending', 'syncing')
         union all select 'session', count(*)::text from agent_sessions where status in ('pending', 'running')
         union all select 'merge intent', count(*)::text from mr_merge_intents`,
        );

      const checkInvariants = async (run: number) => {
        // 1. git fsck
        const fsck = await fsckRepositories(p.dataDir);
        expect(fsck.checked).toBe(4);
        for (const problem of fsck.problems) problems.push(`run ${run}: fsck ${problem}`);
        // 2. acknowledged pushes: the ref names the pushed commit (f-ci/f-deploy main: contains it).
        for (const { branch, sha } of pushes) {
          const [ref, project] = branch.includes('@') ? branch.split('@') : [branch, 'f-git'];
          const repo = repoDir(project!);
          const ok =
            ref === 'main'
              ? (await gitIn(repo, ['merge-base', '--is-ancestor', sha, 'refs/heads/main'])).code === 0
              : (await gitIn(repo, ['rev-parse', '--verify', '-q', `refs/heads/${ref}`])).stdout.trim() ===
                sha;
          if (!ok) problems.push(`run ${run}: acknowledged push ${branch} ${sha} lost`);
        }
        for (const { branch, sha } of unackedPushes) {
          const at = (
            await gitIn(repoDir('f-git'), ['rev-parse', '--verify', '-q', `refs/heads/${branch}`])
          ).stdout.trim();
          if (at && at !== sha) problems.push(`run ${run}: cut push ${branch} left the ref at ${at}`);
        }
        // Merges: acknowledged → merged and in main; cut → either fully merged or not at all, once
        // the recovery loop has completed or dropped the write-ahead intent of an interrupted one.
        await eventually(
          async () => {
            const r = await p.query<{ n: string }>('select count(*)::text as n from mr_merge_intents');
            if (r[0]?.n !== '0') await sleep(250);
            return r[0]?.n === '0';
          },
          RECOVERY_MS,
          'every interrupted merge recovered',
        );
        for (const { number, source } of [...merges, ...unackedMerges]) {
          const acked = merges.some((m) => m.number === number);
          const mr = await api('GET', `/api/projects/${projects['f-git']}/merge-requests/${number}`);
          const inMain =
            (await gitIn(repoDir('f-git'), ['merge-base', '--is-ancestor', source, 'refs/heads/main']))
              .code === 0;
          if (acked && (mr.body.status !== 'merged' || !inMain))
            problems.push(
              `run ${run}: acknowledged merge !${number} lost (status ${mr.body.status}, in main ${inMain})`,
            );
          if (!acked && (mr.body.status === 'merged') !== inMain)
            problems.push(
              `run ${run}: cut merge !${number} half done (status ${mr.body.status}, in main ${inMain})`,
            );
        }
        // OTLP: every acknowledged record of this run is queryable.
        const last = otlpServices.at(-1);
        if (last && records.at(-1)?.activity === 'otlp') problems.push(...(await missingRecords(run, last)));
        for (const id of sessions) {
          const s = await api('GET', `/api/projects/${projects['f-agent']}/sessions/${id}`);
          if (s.status !== 200) problems.push(`run ${run}: acknowledged session ${id} answers ${s.status}`);
        }
        // 3. nothing left running once the recovery window has passed.
        const t0 = Date.now();
        let stuck: { kind: string; n: string }[] = [];
        try {
          await eventually(
            async () => {
              stuck = (await stuckRows()).filter((r) => r.n !== '0');
              if (stuck.length > 0) await sleep(250);
              return stuck.length === 0;
            },
            RECOVERY_MS,
            'every running row settled',
          );
        } catch {
          problems.push(`run ${run}: stuck after ${RECOVERY_MS} ms: ${JSON.stringify(stuck)}`);
        }
        // A settled deployment has exactly one app process (a restart must not leave two).
        const apps = markedProcesses(marker).filter((x) => /^node server\.js /.test(x.cmd));
        if (apps.length > 1)
          problems.push(`run ${run}: ${apps.length} app processes: ${apps.map((a) => a.cmd).join('; ')}`);
        return Date.now() - t0;
      };

      const missingRecords = async (
        run: number,
        { service, messages }: { service: string; messages: string[] },
      ) => {
        const stored = new Set<string>();
        let cursor: string | null = null;
        do {
          const r = await api(
            'GET',
            `/api/observe/logs?service=${service}&limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
          );
          if (r.status !== 200) return [`run ${run}: logs query answered ${r.status}`];
          for (const e of r.body.items as { message: string }[]) stored.add(e.message);
          cursor = r.body.next_cursor as string | null;
        } while (cursor);
        const lost = messages.filter((m) => !stored.has(m));
        return lost.length > 0
          ? [`run ${run}: ${lost.length} of ${messages.length} acknowledged records of ${service} lost`]
          : [];
      };

      for (let run = 1; run <= RUNS; run++) {
        const activity = schedule[run - 1]!;
        const result = await runActivity(run, activity);
        // 4. No orphans: everything the killed platform started dies with it.
        let orphans = 0;
        const left = await markedProcessesAfter(marker, 30_000);
        if (left.length > 0) {
          orphans = left.length;
          problems.push(
            `run ${run}: ${orphans} orphan processes: ${left.map((o) => `${o.pid} ${o.cmd}`).join('; ')}`,
          );
          killMarked(marker);
        }
        const t0 = Date.now();
        await p.start();
        const restartMs = Date.now() - t0;
        admin = await p.adminApi();
        const record: RunRecord = { ...result, markedAtKill, orphans, restartMs, recoveryMs: 0 };
        records.push(record);
        record.recoveryMs = await checkInvariants(run);
        console.log(
          `[faults ${storeMode}] run ${run}/${RUNS} ${activity} kill after ${record.delayMs} ms: ${record.detail}; restart ${restartMs} ms, settled in ${record.recoveryMs} ms, marked processes at the kill ${markedAtKill}, orphans ${orphans}`,
        );
      }

      // Everything acknowledged over all runs, once more at the end.
      for (const o of otlpServices) problems.push(...(await missingRecords(RUNS, o)));
      const ciPipelines = await api('GET', `/api/projects/${projects['f-ci']}/pipelines?limit=100`);
      const built = new Set((ciPipelines.body.items as { commit_sha: string }[]).map((x) => x.commit_sha));
      const pushWithoutPipeline = ciPushes.filter((sha) => !built.has(sha));
      // The deployment ends on a version that was released, and serves it.
      const dep = await api('GET', `/api/projects/${projects['f-deploy']}/deployments/staging`);
      let serving: string | undefined;
      if (dep.status === 200) {
        const version = deployVersions.get(dep.body.commit_sha as string);
        serving = await eventually(
          async () => {
            const res = await fetch(`${p.base}/apps/admin/f-deploy/staging/`);
            return res.status === 200 ? ((await res.json()) as { version: string }).version : undefined;
          },
          60_000,
          'the deployed app serving',
        ).catch(() => undefined);
        if (dep.body.current_status === 'healthy' && serving !== version)
          problems.push(`deployment at ${version} (${dep.body.current_status}) serves ${serving}`);
      }
      const exit = await p.stop();
      if (JSON.stringify(exit) !== JSON.stringify({ code: 0, signal: null }))
        problems.push(`final stop: ${JSON.stringify(exit)}`);
      const leftAtEnd = await markedProcessesAfter(marker, 30_000);
      if (leftAtEnd.length > 0) problems.push(`after the final stop: ${leftAtEnd.length} processes left`);

      const per = Object.fromEntries(
        ACTIVITIES.map((a) => {
          const rs = records.filter((r) => r.activity === a);
          return [
            a,
            {
              runs: rs.length,
              acked: rs.filter((r) => r.acked).length,
              cut: rs.filter((r) => !r.acked).length,
            },
          ];
        }),
      );
      const mean = (xs: number[]) => Math.round(xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length));
      console.log(
        `[faults ${storeMode}] seed ${SEED}: ${records.length} runs in ${Math.round((Date.now() - started) / 1000)} s; per activity ${JSON.stringify(per)}; ` +
          `acknowledged: ${pushes.length} pushes, ${merges.length} merges (${unackedMerges.length} cut), ${otlpServices.reduce((s, o) => s + o.messages.length, 0)} OTLP records, ${sessions.length} sessions; ` +
          `CI pushes without a pipeline: ${pushWithoutPipeline.length}/${ciPushes.length}; deployment ${dep.body.current_status} serving ${serving}; ` +
          `restart mean ${mean(records.map((r) => r.restartMs))} ms, settle mean ${mean(records.map((r) => r.recoveryMs))} ms max ${Math.max(...records.map((r) => r.recoveryMs))} ms; ` +
          `marked processes at the kills ${records.reduce((s, r) => s + r.markedAtKill, 0)}, orphans ${records.reduce((s, r) => s + r.orphans, 0)}; problems ${problems.length}`,
      );
      expect(problems, `seed ${SEED}`).toEqual([]);
      expect(records).toHaveLength(RUNS);
    },
    RUNS * 240_000 + 300_000,
  );
});
