import { describe, expect, it } from 'vitest';
import { LineSplitter, MAX_LINE_BYTES } from './progress.js';
import { ClaudeStreamParser, claudeCodeProvider, commandProvider } from './providers.js';
import { limitReached } from './run.js';

/** A Claude Code stream-json transcript in the CLI's shapes (abridged from a real session). */
const TRANSCRIPT = [
  {
    type: 'system',
    subtype: 'init',
    cwd: '/work',
    session_id: 'a1b2',
    tools: ['Bash', 'Edit', 'Read'],
    mcp_servers: [{ name: 'platform', status: 'connected' }],
    model: 'claude-sonnet-4-5',
    permissionMode: 'bypassPermissions',
  },
  {
    type: 'assistant',
    message: {
      role: 'assistant',
      content: [
        { type: 'thinking', thinking: 'Run the tests first.', signature: 'sig' },
        { type: 'text', text: 'I will run the tests.' },
        {
          type: 'tool_use',
          id: 'toolu_1',
          name: 'Bash',
          input: { command: 'npm test', description: 'tests' },
        },
      ],
      usage: { input_tokens: 3, output_tokens: 40 },
    },
  },
  {
    type: 'user',
    message: {
      role: 'user',
      content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'ok 12 passed' }],
    },
  },
  {
    type: 'assistant',
    message: {
      content: [
        { type: 'tool_use', id: 'toolu_2', name: 'Bash', input: { command: 'git push origin HEAD' } },
      ],
    },
  },
  {
    type: 'user',
    message: {
      content: [
        {
          type: 'tool_result',
          tool_use_id: 'toolu_2',
          content: [{ type: 'text', text: 'rejected' }],
          is_error: true,
        },
      ],
    },
  },
  { type: 'system', subtype: 'compact_boundary' },
  {
    type: 'result',
    subtype: 'error_max_turns',
    is_error: true,
    num_turns: 9,
    duration_ms: 12000,
    total_cost_usd: 0.31,
    usage: {
      input_tokens: 100,
      output_tokens: 50,
      cache_read_input_tokens: 7,
      cache_creation_input_tokens: 2,
    },
  },
];

describe('the claude-code stream-json parser', () => {
  it('turns every block kind into events, milestones on a successful test run, usage from the result', () => {
    const p = new ClaudeStreamParser();
    const events = TRANSCRIPT.flatMap((m) => p.parseLine(JSON.stringify(m)));
    expect(events.map((e) => [e.role, e.kind])).toEqual([
      ['system', 'init'],
      ['assistant', 'thinking'],
      ['assistant', 'text'],
      ['assistant', 'tool_call'],
      ['tool', 'tool_result'],
      ['system', 'milestone'],
      ['assistant', 'tool_call'],
      ['tool', 'tool_result'],
      ['system', 'text'],
      ['system', 'usage'],
      ['assistant', 'completed'],
    ]);
    expect(events[0]!.metadata).toMatchObject({
      provider_session_id: 'a1b2',
      tools: ['Bash', 'Edit', 'Read'],
    });
    expect(events[3]).toMatchObject({
      content: 'Bash: npm test',
      metadata: { tool: 'Bash', tool_use_id: 'toolu_1' },
    });
    expect(events[5]!.content).toBe('tests passed');
    // A failed push is no "pushed" milestone.
    expect(events[7]!.metadata).toMatchObject({ is_error: true, tool: 'Bash' });
    expect(events[10]!.metadata).toEqual({ subtype: 'error_max_turns', is_error: true });
    expect(p.usage()).toEqual({
      inputTokens: 100,
      outputTokens: 50,
      cacheReadTokens: 7,
      cacheWriteTokens: 2,
      costUsd: 0.31,
      numTurns: 9,
    });
  });

  it('never throws: bad lines become error events and parsing goes on; older CLIs’ cost_usd is read', () => {
    const p = new ClaudeStreamParser();
    for (const line of [
      '{not json',
      '[1,2]',
      '"str"',
      'null',
      '{"type":"weird"}',
      '{"type":"assistant","message":7}',
      '',
    ])
      expect(() => p.parseLine(line)).not.toThrow();
    expect(p.parseLine('{not json')[0]).toMatchObject({ kind: 'error' });
    expect(p.parseLine('{"type":"assistant","message":{"content":[{"type":"image"}]}}')[0]!.kind).toBe(
      'error',
    );
    p.parseLine(JSON.stringify({ type: 'result', subtype: 'success', cost_usd: 1.5, num_turns: 2 }));
    expect(p.usage()?.costUsd).toBe(1.5);
    // A later, smaller figure never lowers the ledger.
    p.parseLine(JSON.stringify({ type: 'result', subtype: 'success', total_cost_usd: 0.5, num_turns: 1 }));
    expect(p.usage()).toMatchObject({ costUsd: 1.5, numTurns: 2 });
  });

  it('encodes user messages in the stream-json input format; builds the documented command', () => {
    const provider = claudeCodeProvider({ command: 'claude', image: 'img' });
    expect(JSON.parse(provider.encodeUserMessage('hi\nthere'))).toEqual({
      type: 'user',
      message: { role: 'user', content: 'hi\nthere' },
    });
    const spec = provider.buildSpec({
      id: 's',
      prompt: 'do it',
      config: { model: 'opus; rm -rf /' },
      mcpConfigPath: '/m.json',
    });
    expect(spec.args).toEqual([
      '-p',
      '--output-format',
      'stream-json',
      '--input-format',
      'stream-json',
      '--verbose',
      '--mcp-config',
      '/m.json',
      '--permission-mode',
      'bypassPermissions',
    ]);
    expect(JSON.parse(spec.initialInput[0]!).message.content).toBe('do it');
  });

  it('command provider: plain lines are text events, the prompt as configured', () => {
    const provider = commandProvider('aider', { command: ['/usr/bin/aider', '--yes'], prompt: 'arg' }, 'img');
    expect(provider.buildSpec({ id: 's', prompt: 'p', config: {}, mcpConfigPath: null }).args).toEqual([
      '--yes',
      'p',
    ]);
    expect(provider.createParser().parseLine('hello')).toEqual([
      { role: 'assistant', kind: 'text', content: 'hello', metadata: {} },
    ]);
  });
});

describe('LineSplitter', () => {
  it('joins lines split across chunks (also inside a UTF-8 character) and cuts overlong lines', () => {
    const lines: Array<[string, boolean]> = [];
    const s = new LineSplitter((l, cut) => lines.push([l, cut]));
    const text = Buffer.from('{"a":"é"}\r\n{"b":1}\npartial');
    for (const chunk of [text.subarray(0, 7), text.subarray(7, 13), text.subarray(13)]) s.push(chunk);
    s.flush();
    expect(lines).toEqual([
      ['{"a":"é"}', false],
      ['{"b":1}', false],
      ['partial', false],
    ]);
    lines.length = 0;
    s.push(Buffer.alloc(MAX_LINE_BYTES + 10, 0x61));
    s.push(Buffer.from('\nnext\n'));
    expect(lines.map(([l, cut]) => [l.length, cut])).toEqual([
      [MAX_LINE_BYTES, true],
      [4, false],
    ]);
  });
});

describe('limits', () => {
  const u = {
    inputTokens: 10,
    outputTokens: 5,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    costUsd: 2,
    numTurns: 3,
  };
  it('names the first limit reached', () => {
    expect(limitReached({}, u, null)).toBeNull();
    expect(limitReached({ max_cost_usd: 2 }, u, null)).toBe('cost_limit');
    expect(limitReached({}, u, 1.5)).toBe('daily_budget');
    expect(limitReached({ max_tokens: 15 }, u, null)).toBe('token_limit');
    expect(limitReached({ max_turns: 3 }, u, null)).toBe('turn_limit');
  });
});
