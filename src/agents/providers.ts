import { type ProgressEvent, summarize, type UsageTotals } from './progress.js';

/** What a provider needs to know of a session to build its command. */
export interface ProviderSession {
  id: string;
  prompt: string;
  /** The session's provider options (from the request; never secrets, never a command). */
  config: Record<string, unknown>;
  /** Path of the MCP configuration file for the agent, when the runner wrote one. */
  mcpConfigPath: string | null;
}

/** The process to start: argument array (never a shell string), extra environment, container image. */
export interface ProviderSpec {
  command: string;
  args: string[];
  env: Record<string, string>;
  image: string | null;
  /** Lines written to stdin right after the start (the prompt, for stdin-driven agents). */
  initialInput: string[];
}

/** A provider's parser: one per session (it keeps the state of tool calls across lines). */
export interface ProviderParser {
  parseLine(line: string): ProgressEvent[];
  /** The consumption reported so far (from usage/result events), or null if the provider reports none. */
  usage(): UsageTotals | null;
}

export interface AgentProvider {
  readonly name: string;
  buildSpec(session: ProviderSession): ProviderSpec;
  createParser(): ProviderParser;
  /** The line written to stdin for a user message (with its newline). */
  encodeUserMessage(text: string): string;
}

// ------------------------------------------------------------------ claude-code

/** `claude -p` in streaming JSON both ways: one JSON object per line on stdout and stdin. */
export function claudeCodeProvider(settings: { command: string; image: string }): AgentProvider {
  return {
    name: 'claude-code',
    buildSpec(session) {
      const args = ['-p', '--output-format', 'stream-json', '--input-format', 'stream-json', '--verbose'];
      const model = session.config.model;
      if (typeof model === 'string' && /^[A-Za-z0-9._:-]{1,100}$/.test(model)) args.push('--model', model);
      const maxTurns = session.config.max_turns;
      if (typeof maxTurns === 'number' && Number.isInteger(maxTurns) && maxTurns > 0)
        args.push('--max-turns', String(maxTurns));
      if (session.mcpConfigPath) args.push('--mcp-config', session.mcpConfigPath);
      // Non-interactive: nobody answers permission prompts; the sandbox and the delegated token bound it.
      args.push('--permission-mode', 'bypassPermissions');
      return {
        command: settings.command,
        args,
        env: {},
        image: settings.image,
        initialInput: [encodeClaudeUserMessage(session.prompt)],
      };
    },
    createParser: () => new ClaudeStreamParser(),
    encodeUserMessage: encodeClaudeUserMessage,
  };
}

function encodeClaudeUserMessage(text: string): string {
  return `${JSON.stringify({ type: 'user', message: { role: 'user', content: text } })}\n`;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);

/** git commands and test runs in a shell tool call become milestones once their result succeeds. */
const MILESTONES: Array<[RegExp, string]> = [
  [/\bgit\s+(?:-\S+\s+)*commit\b/, 'committed'],
  [/\bgit\s+(?:-\S+\s+)*push\b/, 'pushed'],
  [
    /\b(?:npm|pnpm|yarn)\s+(?:run\s+)?test\b|\bpytest\b|\bvitest\b|\bgo\s+test\b|\bcargo\s+test\b|\bmake\s+test\b/,
    'tests passed',
  ],
];

/**
 * Claude Code's stream-json output: `system` (subtype `init`: session_id, model, tools,
 * mcp_servers), `assistant` (content blocks text / thinking / tool_use), `user` (tool_result
 * blocks), `result` (subtype success / error_*, num_turns, duration_ms, total_cost_usd — older
 * CLIs: cost_usd — and usage). Anything else, or a line that is not JSON, is an error event: the
 * parser never throws.
 */
export class ClaudeStreamParser implements ProviderParser {
  private readonly tools = new Map<string, { name: string; input: unknown }>();
  private totals: UsageTotals | null = null;

  usage(): UsageTotals | null {
    return this.totals;
  }

  parseLine(line: string): ProgressEvent[] {
    const trimmed = line.trim();
    if (!trimmed) return [];
    let msg: unknown;
    try {
      msg = JSON.parse(trimmed);
    } catch {
      return [errorEvent('unparseable line from the agent', { line: summarize(trimmed, 500) })];
    }
    if (!isObject(msg))
      return [errorEvent('unexpected JSON value from the agent', { line: summarize(trimmed, 500) })];
    try {
      return this.parseMessage(msg);
    } catch (err) {
      return [errorEvent(`could not interpret a ${String(msg.type)} message: ${(err as Error).message}`, {})];
    }
  }

  private parseMessage(msg: Json): ProgressEvent[] {
    switch (msg.type) {
      case 'system':
        return [this.system(msg)];
      case 'assistant':
        return this.assistant(msg);
      case 'user':
        return this.userMessage(msg);
      case 'result':
        return this.result(msg);
      default:
        return [errorEvent(`unknown message type ${summarize(msg.type, 50)}`, { raw: summarize(msg, 500) })];
    }
  }

  private system(msg: Json): ProgressEvent {
    if (msg.subtype === 'init') {
      const tools = Array.isArray(msg.tools) ? msg.tools.filter((t) => typeof t === 'string') : [];
      const servers = Array.isArray(msg.mcp_servers)
        ? msg.mcp_servers
            .filter(isObject)
            .map((s) => ({ name: String(s.name ?? ''), status: String(s.status ?? '') }))
        : [];
      return {
        role: 'system',
        kind: 'init',
        content: `session started${typeof msg.model === 'string' ? ` (${msg.model})` : ''}`,
        metadata: {
          provider_session_id: typeof msg.session_id === 'string' ? msg.session_id : null,
          model: typeof msg.model === 'string' ? msg.model : null,
          tools,
          mcp_servers: servers,
        },
      };
    }
    return {
      role: 'system',
      kind: 'text',
      content: `system: ${summarize(msg.subtype ?? 'message', 80)}`,
      metadata: { subtype: typeof msg.subtype === 'string' ? msg.subtype : null, raw: summarize(msg, 500) },
    };
  }

  private assistant(msg: Json): ProgressEvent[] {
    const message = isObject(msg.message) ? msg.message : {};
    const blocks = Array.isArray(message.content) ? message.content : [];
    const events: ProgressEvent[] = [];
    for (const block of blocks) {
      if (!isObject(block)) continue;
      if (block.type === 'text' && typeof block.text === 'string') {
        events.push({ role: 'assistant', kind: 'text', content: block.text, metadata: {} });
      } else if (block.type === 'thinking') {
        const text = typeof block.thinking === 'string' ? block.thinking : '';
        events.push({ role: 'assistant', kind: 'thinking', content: text, metadata: {} });
      } else if (block.type === 'tool_use') {
        const id = typeof block.id === 'string' ? block.id : '';
        const name = typeof block.name === 'string' ? block.name : 'tool';
        if (id) this.tools.set(id, { name, input: block.input });
        events.push({
          role: 'assistant',
          kind: 'tool_call',
          content: `${name}: ${summarize(toolInputSummary(block.input))}`,
          metadata: { tool: name, tool_use_id: id, input: summarize(block.input, 2000) },
        });
      } else {
        events.push(errorEvent(`unknown content block ${summarize(block.type, 50)}`, {}));
      }
    }
    return events;
  }

  private userMessage(msg: Json): ProgressEvent[] {
    const message = isObject(msg.message) ? msg.message : {};
    const content = message.content;
    if (typeof content === 'string')
      return [{ role: 'user', kind: 'text', content, metadata: { echo: true } }];
    const events: ProgressEvent[] = [];
    for (const block of Array.isArray(content) ? content : []) {
      if (!isObject(block)) continue;
      if (block.type !== 'tool_result') {
        if (block.type === 'text' && typeof block.text === 'string')
          events.push({ role: 'user', kind: 'text', content: block.text, metadata: { echo: true } });
        continue;
      }
      const id = typeof block.tool_use_id === 'string' ? block.tool_use_id : '';
      const call = this.tools.get(id);
      this.tools.delete(id);
      const isError = block.is_error === true;
      events.push({
        role: 'tool',
        kind: 'tool_result',
        content: summarize(resultText(block.content), 2000),
        metadata: { tool_use_id: id, tool: call?.name ?? null, is_error: isError },
      });
      if (!isError && call) {
        const command =
          isObject(call.input) && typeof call.input.command === 'string' ? call.input.command : '';
        for (const [pattern, milestone] of MILESTONES) {
          if (pattern.test(command))
            events.push({
              role: 'system',
              kind: 'milestone',
              content: milestone,
              metadata: { tool_use_id: id },
            });
        }
      }
    }
    return events;
  }

  private result(msg: Json): ProgressEvent[] {
    const usage = isObject(msg.usage) ? msg.usage : {};
    // total_cost_usd since Claude Code 1.0.x; older CLIs wrote cost_usd.
    const cost = num(msg.total_cost_usd) || num(msg.cost_usd);
    const totals: UsageTotals = {
      inputTokens: num(usage.input_tokens),
      outputTokens: num(usage.output_tokens),
      cacheReadTokens: num(usage.cache_read_input_tokens),
      cacheWriteTokens: num(usage.cache_creation_input_tokens),
      costUsd: cost,
      numTurns: num(msg.num_turns),
    };
    // Each turn's result is cumulative for the session; never let a smaller figure lower the ledger.
    const prev = this.totals;
    this.totals = prev
      ? {
          inputTokens: Math.max(prev.inputTokens, totals.inputTokens),
          outputTokens: Math.max(prev.outputTokens, totals.outputTokens),
          cacheReadTokens: Math.max(prev.cacheReadTokens, totals.cacheReadTokens),
          cacheWriteTokens: Math.max(prev.cacheWriteTokens, totals.cacheWriteTokens),
          costUsd: Math.max(prev.costUsd, totals.costUsd),
          numTurns: Math.max(prev.numTurns, totals.numTurns),
        }
      : totals;
    const subtype = typeof msg.subtype === 'string' ? msg.subtype : 'success';
    const isError = msg.is_error === true || subtype !== 'success';
    return [
      {
        role: 'system',
        kind: 'usage',
        content: `cost $${this.totals.costUsd.toFixed(4)}, ${this.totals.inputTokens} in / ${this.totals.outputTokens} out tokens, ${this.totals.numTurns} turns`,
        metadata: {
          input_tokens: this.totals.inputTokens,
          output_tokens: this.totals.outputTokens,
          cache_read_tokens: this.totals.cacheReadTokens,
          cache_write_tokens: this.totals.cacheWriteTokens,
          cost_usd: this.totals.costUsd,
          num_turns: this.totals.numTurns,
          duration_ms: num(msg.duration_ms),
        },
      },
      {
        role: 'assistant',
        kind: 'completed',
        content: typeof msg.result === 'string' ? msg.result : isError ? `ended: ${subtype}` : 'done',
        metadata: { subtype, is_error: isError },
      },
    ];
  }
}

function toolInputSummary(input: unknown): unknown {
  if (!isObject(input)) return input;
  for (const key of ['command', 'file_path', 'path', 'pattern', 'url', 'query', 'description'])
    if (typeof input[key] === 'string') return input[key];
  return input;
}

function resultText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content
      .map((c) => (isObject(c) && typeof c.text === 'string' ? c.text : ''))
      .filter(Boolean)
      .join('\n');
  return '';
}

function errorEvent(content: string, metadata: Record<string, unknown>): ProgressEvent {
  return { role: 'system', kind: 'error', content, metadata };
}

// ------------------------------------------------------------------ command

/** An admin-defined command provider: the executable and how it gets the prompt. */
export interface CommandProviderConfig {
  command: string[];
  prompt: 'stdin' | 'env' | 'arg';
  image?: string | undefined;
}

/** Any executable; each plain output line is a text event, user messages are plain stdin lines. */
export function commandProvider(
  name: string,
  config: CommandProviderConfig,
  defaultImage: string,
): AgentProvider {
  return {
    name,
    buildSpec(session) {
      const [command, ...args] = config.command;
      if (config.prompt === 'arg') args.push(session.prompt);
      return {
        command: command!,
        args,
        env: {},
        image: config.image ?? defaultImage,
        initialInput: config.prompt === 'stdin' ? [`${session.prompt.replace(/\r?\n/g, ' ')}\n`] : [],
      };
    },
    createParser: () => ({
      parseLine: (line) =>
        line.trim()
          ? [{ role: 'assistant', kind: 'text', content: line, metadata: {} } satisfies ProgressEvent]
          : [],
      usage: () => null,
    }),
    encodeUserMessage: (text) => `${text.replace(/\r?\n/g, ' ')}\n`,
  };
}
