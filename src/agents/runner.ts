import { constants } from 'node:fs';
import { chown, type FileHandle, open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sharedProcessLauncher } from '../core/launcher.js';
import type { RepoSource, Runner, StepRunResult } from '../runners/index.js';
import type { ProviderSpec } from './providers.js';

/** What starting an agent process needs: the provider's command, the environment, the checkout. */
export interface AgentRunRequest {
  sessionId: string;
  projectId: string;
  /** The commit the session branch starts from (a new branch) or its head (an existing one). */
  source: RepoSource;
  branch: string;
  spec: ProviderSpec;
  /** The complete environment of the agent process (PLATFORM_API_TOKEN, secrets, …). */
  env: Record<string, string>;
  git: { name: string; email: string };
  /** Written to a file the agent gets the path of (never in the environment or the transcript). */
  mcpConfig: unknown;
  timeoutSeconds: number;
  signal: AbortSignal;
  onOutput(chunk: Buffer): void;
}

export interface AgentRun {
  /** Writes to the agent's stdin; false when this runner has no stdin for it (pods). */
  write(text: string): Promise<boolean>;
  /** Ends the agent's input (it sees end-of-file once what was written is read). */
  closeInput(): Promise<void>;
  /** The process has been started (the agent may now print). */
  readonly started: Promise<void>;
  /** Ends when the process has exited and its workspace is removed. */
  readonly result: Promise<StepRunResult & { stderrTail: string }>;
}

export interface AgentRunner {
  readonly kind: 'local' | 'kubernetes';
  start(req: AgentRunRequest): Promise<AgentRun>;
  /** Kills and removes what a vanished run left (process groups, pods, workspaces). */
  cleanup(sessionIds: string[]): Promise<void>;
}

/** A single-quoted shell word: the script is a constant except for these quoted arguments. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The agent's step script: the fresh clone is put on the session branch, pushes go over HTTP to
 * PROJECT_CLONE_URL with the session token (a credential helper reading $PLATFORM_API_TOKEN, so the
 * token is written to no file), and the provider's command replaces the shell.
 */
function agentScript(spec: ProviderSpec, stdin: string | null, stderr: string | null): string[] {
  // One command: the step runner echoes each command once (`$ …`), the session skips that line.
  const command = [spec.command, ...spec.args].map(shellQuote).join(' ');
  const input = stdin ? ` < ${shellQuote(stdin)}` : ' < /dev/null';
  const errors = stderr ? ` 2>> ${shellQuote(stderr)}` : '';
  const lines = [
    'git checkout -q -B "$BRANCH"',
    'git remote set-url origin "$PROJECT_CLONE_URL"',
    `git config --global credential.helper ${shellQuote('!f() { test "$1" = get && echo "username=$AGENT_GIT_NAME" && echo "password=$PLATFORM_API_TOKEN"; }; f')}`,
    'git config --global user.name "$AGENT_GIT_NAME"',
    'git config --global user.email "$AGENT_GIT_EMAIL"',
    stdin ? `exec ${command}${input}${errors}` : `printf '%s' "$AGENT_INITIAL_INPUT" | ${command}${errors}`,
  ];
  return [lines.join(' && ')];
}

/**
 * The local runner's agent: one step in the pipeline sandbox (the same runner, its workspace, its
 * supervisor and process-group handling), its stdin a FIFO in the run's HOME area that the platform
 * holds open read-write (so the agent never sees end-of-input while the session lives), its stderr
 * a file beside it (stdout stays pure JSON lines).
 */
export function localAgentRunner(runner: Runner, options: { sandboxUid: number | null }): AgentRunner {
  return {
    kind: 'local',
    async start(req) {
      const workspace = await runner.prepareWorkspace(req.sessionId, req.source);
      // <workRoot>/<id>/src is the checkout; <workRoot>/<id>/home is writable in the sandbox too.
      const home = path.join(path.dirname(workspace.dir), 'home');
      const fifo = path.join(home, 'agent-stdin');
      const stderrFile = path.join(home, 'agent-stderr.log');
      const mcpFile = path.join(home, 'mcp.json');
      let fd: FileHandle | undefined;
      try {
        await mkfifo(fifo);
        await writeFile(mcpFile, JSON.stringify(req.mcpConfig), { mode: 0o600 });
        if (options.sandboxUid !== null) {
          await chown(fifo, options.sandboxUid, options.sandboxUid);
          await chown(mcpFile, options.sandboxUid, options.sandboxUid);
        }
        // Read-write: opening a FIFO so never waits for the other end, and the agent sees no EOF.
        fd = await open(fifo, constants.O_RDWR);
      } catch (err) {
        await fd?.close().catch(() => {});
        await workspace.dispose();
        throw err;
      }
      const handle = fd;
      let writes = Promise.resolve();
      let closed = false;
      const write = (text: string): Promise<boolean> => {
        if (closed) return Promise.resolve(false);
        const next = writes.then(async () => {
          if (!closed) await handle.write(text);
        });
        writes = next.catch(() => {});
        return next.then(
          () => !closed,
          () => false,
        );
      };
      for (const line of req.spec.initialInput) void write(line);
      const closeInput = async () => {
        if (closed) return;
        closed = true;
        await writes;
        await handle.close().catch(() => {});
      };
      let markStarted!: () => void;
      const started = new Promise<void>((resolve) => {
        markStarted = resolve;
      });
      const spec = { ...req.spec, args: req.spec.args.map((a) => a.replaceAll('$MCP_CONFIG', mcpFile)) };
      const result = runner
        .runStep({
          runId: req.sessionId,
          pipelineId: req.sessionId,
          stepName: 'agent',
          image: null,
          commands: agentScript(spec, fifo, stderrFile),
          env: {
            ...req.env,
            BRANCH: req.branch,
            AGENT_GIT_NAME: req.git.name,
            AGENT_GIT_EMAIL: req.git.email,
            AGENT_MCP_CONFIG: mcpFile,
          },
          timeoutSeconds: req.timeoutSeconds,
          workspace,
          source: req.source,
          signal: req.signal,
          onOutput: (chunk) => {
            markStarted();
            req.onOutput(chunk);
          },
        })
        .then(async (r) => {
          markStarted();
          await closeInput();
          const stderrTail = await readTail(stderrFile);
          await workspace.dispose();
          return { ...r, stderrTail };
        });
      return { write, closeInput, started, result };
    },
    cleanup: (ids) => runner.cleanupOrphans(ids),
  };
}

/**
 * The kubernetes runner's agent: a pod like a pipeline step's (init container clones with the
 * session token, non-root, no service-account token, limits, restartPolicy Never, the whole
 * environment in a Secret). The initial input is piped in from the environment; a pod has no stdin
 * the platform writes to, so user messages are refused for these sessions.
 */
export function kubernetesAgentRunner(runner: Runner): AgentRunner {
  return {
    kind: 'kubernetes',
    async start(req) {
      const workspace = await runner.prepareWorkspace(req.sessionId, req.source);
      let markStarted!: () => void;
      const started = new Promise<void>((resolve) => {
        markStarted = resolve;
      });
      const result = runner
        .runStep({
          runId: req.sessionId,
          pipelineId: req.sessionId,
          stepName: 'agent',
          image: req.spec.image,
          commands: [
            `printf '%s' "$AGENT_MCP_JSON" > "$HOME/mcp.json" && ${agentScript(
              {
                ...req.spec,
                args: req.spec.args.map((a) => a.replaceAll('$MCP_CONFIG', '/home/platform/mcp.json')),
              },
              null,
              null,
            ).join('')}`,
          ],
          env: {
            ...req.env,
            BRANCH: req.branch,
            AGENT_GIT_NAME: req.git.name,
            AGENT_GIT_EMAIL: req.git.email,
            AGENT_INITIAL_INPUT: req.spec.initialInput.join(''),
            AGENT_MCP_JSON: JSON.stringify(req.mcpConfig),
          },
          timeoutSeconds: req.timeoutSeconds,
          workspace,
          source: req.source,
          labels: { 'platform.io/agent-session': req.sessionId, 'platform.io/project': req.projectId },
          signal: req.signal,
          onOutput: (chunk) => {
            markStarted();
            req.onOutput(chunk);
          },
        })
        .then(async (r) => {
          markStarted();
          await workspace.dispose();
          return { ...r, stderrTail: '' };
        });
      return { write: async () => false, closeInput: async () => {}, started, result };
    },
    cleanup: (ids) => runner.cleanupOrphans(ids),
  };
}

async function mkfifo(file: string): Promise<void> {
  const child = await sharedProcessLauncher().spawn({
    file: 'mkfifo',
    args: ['-m', '0600', '--', file],
    env: { PATH: '/usr/bin:/bin', LANG: 'C' },
  });
  let stderr = '';
  child.onOutput((chunk, stream) => {
    if (stream === 'stderr') stderr += chunk.toString('utf8');
  });
  const exit = await child.exited;
  await child.closed;
  if (exit.code !== 0) throw new Error(`mkfifo ${file} failed: ${stderr.trim()}`);
}

async function readTail(file: string, bytes = 4096): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.length > bytes ? text.slice(-bytes) : text;
}
