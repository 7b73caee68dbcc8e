import { isMap, isScalar, LineCounter, parseDocument } from 'yaml';
import { globMatch } from '../core/glob.js';
import { closest } from '../core/suggest.js';
import { validateCron } from './cron.js';
import { DefinitionError } from './definition-error.js';
import { describe, type Field, Reader } from './definition-reader.js';
import type {
  ArtifactDefinition,
  MrAction,
  PipelineDefinition,
  PublishSpec,
  StepDefinition,
} from './definition-types.js';

export { nextCronRun, validateCron } from './cron.js';
export { DefinitionError };

const MAX_DEFINITION_BYTES = 256 * 1024;
const MAX_STEPS = 100;
const MAX_COMMANDS_PER_STEP = 200;
const MIN_TIMEOUT_SECONDS = 1;
const MAX_TIMEOUT_SECONDS = 24 * 3600;
// Not in the spec: bounds the expiry so `now + expires` is always a valid timestamp.
const MAX_EXPIRES_SECONDS = 365 * 86400;

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DNS_LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const MR_ACTIONS: readonly MrAction[] = ['opened', 'synchronized', 'reopened'];
const DEFAULT_MR_ACTIONS: MrAction[] = ['opened', 'synchronized'];

const PIPELINE_KEYS = ['steps', 'artifacts', 'on', 'concurrency'] as const;
const STEP_KEYS = [
  'name',
  'image',
  'commands',
  'environment',
  'depends_on',
  'timeout',
  'when',
  'allow_failure',
  'publish',
  'network',
] as const;
const NETWORK_MODES = ['host', 'none'] as const;

// ---------------------------------------------------------------------------------------------
// Durations

const DURATION_RE = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/** "7d", "12h", "30m", "45s", "1h30m" (largest unit first, each at most once) → seconds. */
export function parseDuration(text: string): number {
  const trimmed = typeof text === 'string' ? text.trim() : '';
  const match = trimmed === '' ? null : DURATION_RE.exec(trimmed);
  if (!match) {
    throw new Error(
      `invalid duration ${JSON.stringify(text)}: expected a number followed by d, h, m or s, largest unit first (e.g. "10m", "1h30m", "7d")`,
    );
  }
  const [d, h, m, s] = match.slice(1).map((part) => (part === undefined ? 0 : Number(part))) as [
    number,
    number,
    number,
    number,
  ];
  const seconds = d * 86400 + h * 3600 + m * 60 + s;
  if (!Number.isSafeInteger(seconds)) throw new Error(`invalid duration ${JSON.stringify(text)}: too large`);
  return seconds;
}

function formatSeconds(seconds: number): string {
  if (seconds % 86400 === 0 && seconds > 86400) return `${seconds / 86400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

function pathProblem(path: string): string | null {
  if (path.includes('\0')) return 'must not contain NUL';
  if (path.startsWith('/') || path.startsWith('\\') || /^[A-Za-z]:/.test(path)) {
    return 'must be a path relative to the workspace';
  }
  if (path.split(/[\\/]/).includes('..')) return 'must not contain ".."';
  return null;
}

function readName(r: Reader, field: Field, seen: Map<string, Field>, what: string): string {
  r.requireValue(field);
  const name = r.string(field);
  if (!NAME_RE.test(name)) {
    r.fail(
      field,
      `invalid name ${JSON.stringify(name)}: letters, digits, "_", "." and "-", starting with a letter or digit, at most 63 characters`,
    );
  }
  const previous = seen.get(name);
  if (previous)
    r.fail(field, `duplicate ${what} name ${JSON.stringify(name)} (first used on line ${previous.line})`);
  seen.set(name, field);
  return name;
}

function readDuration(r: Reader, field: Field, min: number, max: number): number | null {
  const node = field.value;
  if (node === null) return null;
  let seconds: number;
  if (isScalar(node) && typeof node.value === 'number') {
    if (!Number.isInteger(node.value))
      r.fail(field, 'expected a duration like "10m" or a whole number of seconds');
    seconds = node.value;
  } else if (isScalar(node) && typeof node.value === 'string') {
    try {
      seconds = parseDuration(node.value);
    } catch (err) {
      r.fail(field, (err as Error).message);
    }
  } else {
    r.fail(field, 'expected a duration like "10m" or a whole number of seconds');
  }
  if (seconds < min || seconds > max)
    r.fail(field, `must be between ${formatSeconds(min)} and ${formatSeconds(max)}`);
  return seconds;
}

function readEnvironment(r: Reader, field: Field): Record<string, string> {
  const env: Record<string, string> = {};
  if (field.value === null) return env;
  for (const { name, field: entry } of r.entries(field)) {
    if (!ENV_KEY_RE.test(name)) {
      r.fail(entry, 'invalid variable name: letters, digits and "_", not starting with a digit');
    }
    const node = entry.value;
    if (!isScalar(node) || !['string', 'number', 'boolean'].includes(typeof node.value)) {
      r.fail(entry, 'expected a string, number or boolean');
    }
    // A plain `1.10` stays "1.10" (not "1.1"): the step sees what the author wrote.
    env[name] =
      typeof node.value !== 'string' && node.type === 'PLAIN' && typeof node.source === 'string'
        ? node.source
        : String(node.value);
  }
  return env;
}

function readCommands(r: Reader, field: Field): string[] {
  r.requireValue(field);
  const items = r.list(field, 'a list of strings');
  if (items.length === 0) r.fail(field, 'must contain at least one command');
  if (items.length > MAX_COMMANDS_PER_STEP) {
    r.fail(field, `at most ${MAX_COMMANDS_PER_STEP} commands per step (got ${items.length})`);
  }
  return items.map((item) => {
    // `- echo a: b` is a mapping in YAML, the classic surprise in CI files.
    if (isMap(item.value)) r.fail(item, 'expected a string (quote a command that contains ": ")');
    return r.string(item);
  });
}

function readWhen(r: Reader, field: Field): { branches: string[] } | null {
  if (field.value === null) return null;
  const when = r.fields(field, ['branch', 'branches']);
  if (when.branch.present && when.branches.present) r.fail(field, 'use either branch or branches, not both');
  const source = when.branch.present ? when.branch : when.branches;
  if (!source.present) r.fail(field, 'expected branch or branches');
  return { branches: r.stringOrList(source) };
}

function readPublish(r: Reader, field: Field): PublishSpec | null {
  if (field.value === null) return null;
  const publish = r.fields(field, ['artifact', 'image', 'environment']);
  const artifact = r.optionalString(publish.artifact);
  const image = r.optionalString(publish.image);
  if ((artifact === null) === (image === null)) r.fail(field, 'expected exactly one of artifact or image');
  r.requireValue(publish.environment);
  const environment = r.string(publish.environment);
  if (!DNS_LABEL_RE.test(environment)) {
    r.fail(
      publish.environment,
      `invalid environment ${JSON.stringify(environment)}: lower-case letters, digits and "-" (a DNS label)`,
    );
  }
  if (artifact !== null) {
    const problem = pathProblem(artifact);
    if (problem) r.fail(publish.artifact, problem);
    return { artifact, environment };
  }
  return { image: image!, environment };
}

interface StepDraft {
  step: StepDefinition;
  dependsOn: Field[];
  dependsOnField: Field;
}

function readStep(r: Reader, field: Field, names: Map<string, Field>): StepDraft {
  if (!isMap(field.value)) r.fail(field, 'expected a mapping');
  const f = r.fields(field, STEP_KEYS);
  const name = readName(r, f.name, names, 'step');
  const dependsOn = f.depends_on.value === null ? [] : r.list(f.depends_on, 'a list of step names');
  const step: StepDefinition = {
    name,
    image: r.optionalString(f.image),
    commands: readCommands(r, f.commands),
    environment: readEnvironment(r, f.environment),
    depends_on: [],
    timeout_seconds: readDuration(r, f.timeout, MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS),
    when: readWhen(r, f.when),
    allow_failure: r.boolean(f.allow_failure, false),
    publish: readPublish(r, f.publish),
    network: readNetwork(r, f.network),
  };
  return { step, dependsOn, dependsOnField: f.depends_on };
}

function readNetwork(r: Reader, field: Field): StepDefinition['network'] {
  const value = r.optionalString(field);
  if (value === null) return 'host';
  if (!(NETWORK_MODES as readonly string[]).includes(value))
    r.fail(field, `unknown network ${JSON.stringify(value)} (expected one of: ${NETWORK_MODES.join(', ')})`);
  return value as StepDefinition['network'];
}

/** Resolves depends_on (forward references allowed) and rejects cycles, naming one. */
function linkSteps(r: Reader, drafts: StepDraft[], names: Map<string, Field>): void {
  const known = [...names.keys()];
  for (const draft of drafts) {
    for (const dep of draft.dependsOn) {
      const target = r.string(dep);
      if (target === draft.step.name) r.fail(dep, 'a step cannot depend on itself');
      if (!names.has(target)) {
        const suggestion = closest(target, known);
        r.fail(
          dep,
          `unknown step ${JSON.stringify(target)}${suggestion ? ` (did you mean "${suggestion}"?)` : ''}`,
        );
      }
      if (!draft.step.depends_on.includes(target)) draft.step.depends_on.push(target);
    }
  }
  const byName = new Map(drafts.map((d) => [d.step.name, d]));
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): void => {
    state.set(name, 'visiting');
    stack.push(name);
    for (const dep of byName.get(name)!.step.depends_on) {
      if (state.get(dep) === 'visiting') {
        const cycle = [...stack.slice(stack.indexOf(dep)), dep];
        r.fail(byName.get(dep)!.dependsOnField, `dependency cycle: ${cycle.join(' -> ')}`);
      }
      if (!state.has(dep)) visit(dep);
    }
    stack.pop();
    state.set(name, 'done');
  };
  for (const draft of drafts) if (!state.has(draft.step.name)) visit(draft.step.name);
}

function readArtifacts(r: Reader, field: Field): ArtifactDefinition[] {
  if (field.value === null) return [];
  const names = new Map<string, Field>();
  return r.list(field, 'a list of artifacts').map((item) => {
    if (!isMap(item.value)) r.fail(item, 'expected a mapping with name and path');
    const f = r.fields(item, ['name', 'path', 'expires']);
    const name = readName(r, f.name, names, 'artifact');
    r.requireValue(f.path);
    const path = r.string(f.path);
    const problem = pathProblem(path);
    if (problem) r.fail(f.path, problem);
    return { name, path, expires_seconds: readDuration(r, f.expires, 1, MAX_EXPIRES_SECONDS) };
  });
}

const ALL_BRANCHES = () => ({ branches: ['*'], tags: [] as string[] });

function readTriggers(r: Reader, field: Field): PipelineDefinition['on'] {
  // No `on` at all: build every branch push (and allow the API), so a first definition just works.
  if (field.value === null) return { push: ALL_BRANCHES(), mr: null, schedule: [], api: true };
  const on = r.fields(field, ['push', 'mr', 'schedule', 'api']);

  // `push:` / `mr:` with an empty value mean "enabled with defaults", as in other CI systems.
  let push: PipelineDefinition['on']['push'] = null;
  if (on.push.present) {
    const node = on.push.value;
    if (node === null) push = ALL_BRANCHES();
    else if (isScalar(node) && typeof node.value === 'boolean') push = node.value ? ALL_BRANCHES() : null;
    else {
      if (!isMap(node)) r.fail(on.push, 'expected true, false or a mapping with branches and tags');
      const p = r.fields(on.push, ['branches', 'tags']);
      const branches = p.branches.value !== null ? r.stringOrList(p.branches) : null;
      const tags = p.tags.value !== null ? r.stringOrList(p.tags) : null;
      // Only tags listed means a tag-only trigger; nothing listed means every branch.
      push = { branches: branches ?? (tags ? [] : ['*']), tags: tags ?? [] };
    }
  }

  let mr: PipelineDefinition['on']['mr'] = null;
  if (on.mr.present) {
    const node = on.mr.value;
    if (node === null) mr = { actions: [...DEFAULT_MR_ACTIONS] };
    else if (isScalar(node) && typeof node.value === 'boolean')
      mr = node.value ? { actions: [...DEFAULT_MR_ACTIONS] } : null;
    else {
      if (!isMap(node)) r.fail(on.mr, 'expected true, false or a mapping with actions');
      const m = r.fields(on.mr, ['actions']);
      if (m.actions.value === null) mr = { actions: [...DEFAULT_MR_ACTIONS] };
      else {
        const actions: MrAction[] = [];
        const list = isScalar(m.actions.value) ? [m.actions] : r.list(m.actions, 'a list of actions');
        if (list.length === 0) r.fail(m.actions, 'must not be empty');
        for (const item of list) {
          const action = r.string(item) as MrAction;
          if (!MR_ACTIONS.includes(action)) {
            r.fail(
              item,
              `unknown action ${JSON.stringify(action)} (expected one of: ${MR_ACTIONS.join(', ')})`,
            );
          }
          if (!actions.includes(action)) actions.push(action);
        }
        mr = { actions };
      }
    }
  }

  const schedule: string[] = [];
  if (on.schedule.value !== null) {
    const items = isScalar(on.schedule.value)
      ? [on.schedule]
      : r.list(on.schedule, 'a list of cron expressions');
    for (const item of items) {
      const expr = r.string(item, 'a cron expression string').trim();
      try {
        validateCron(expr);
      } catch (err) {
        r.fail(item, (err as Error).message);
      }
      schedule.push(expr);
    }
  }

  return { push, mr, schedule, api: r.boolean(on.api, true) };
}

function readConcurrency(r: Reader, field: Field): PipelineDefinition['concurrency'] {
  if (field.value === null) return null;
  if (isScalar(field.value))
    return { group: r.string(field, 'a group name or a mapping'), cancel_in_progress: false };
  const c = r.fields(field, ['group', 'cancel_in_progress']);
  r.requireValue(c.group);
  return { group: r.string(c.group), cancel_in_progress: r.boolean(c.cancel_in_progress, false) };
}

/**
 * Parses and validates a `.platform.yaml`. The keys live under `pipeline:`; the same keys at the top
 * level (without `pipeline:`) are accepted too. Throws DefinitionError naming the key and the line.
 */
export function parseDefinition(text: string): PipelineDefinition {
  const size = Buffer.byteLength(text, 'utf8');
  if (size > MAX_DEFINITION_BYTES) {
    throw new DefinitionError(
      '',
      `the definition is too large (${size} bytes, at most ${MAX_DEFINITION_BYTES})`,
      null,
    );
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) {
    throw new DefinitionError('', `YAML syntax error: ${syntax.message}`, lines.linePos(syntax.pos[0]).line);
  }
  const r: Reader = new Reader(doc, lines);
  const top = r.deref(doc.contents);
  if (top === null)
    throw new DefinitionError(
      '',
      'the definition is empty (expected a "pipeline:" mapping with "steps")',
      null,
    );
  if (!isMap(top)) {
    throw new DefinitionError(
      '',
      `expected a mapping with "pipeline:" at the top level, got ${describe(top)}`,
      r.lineOf(top),
    );
  }

  let pipeline = r.root(top, '');
  const wrapped = top.items.some((pair) => isScalar(pair.key) && pair.key.value === 'pipeline');
  if (wrapped) {
    const wrapper = r.fields(pipeline, ['pipeline']);
    if (!isMap(wrapper.pipeline.value)) r.fail(wrapper.pipeline, 'expected a mapping with steps');
    pipeline = r.root(wrapper.pipeline.value, '');
  }
  // Without the wrapper, a misspelt `pipeline:` should still be suggested.
  const f = r.fields(pipeline, PIPELINE_KEYS, wrapped ? PIPELINE_KEYS : [...PIPELINE_KEYS, 'pipeline']);

  r.requireValue(f.steps);
  const stepFields = r.list(f.steps, 'a list of steps');
  if (stepFields.length === 0) r.fail(f.steps, 'must contain at least one step');
  if (stepFields.length > MAX_STEPS) r.fail(f.steps, `at most ${MAX_STEPS} steps (got ${stepFields.length})`);
  const names = new Map<string, Field>();
  const drafts = stepFields.map((step) => readStep(r, step, names));
  linkSteps(r, drafts, names);

  return {
    steps: drafts.map((d) => d.step),
    artifacts: readArtifacts(r, f.artifacts),
    on: readTriggers(r, f.on),
    concurrency: readConcurrency(r, f.concurrency),
  };
}

// ---------------------------------------------------------------------------------------------
// Trigger matching

/** Whether a push of `ref` (refs/heads/x or refs/tags/x) starts a pipeline. */
export function matchesPush(def: PipelineDefinition, ref: string): boolean {
  const push = def.on.push;
  if (!push) return false;
  const branch = /^refs\/heads\/(.+)$/.exec(ref)?.[1];
  if (branch !== undefined) return push.branches.some((glob) => globMatch(glob, branch));
  const tag = /^refs\/tags\/(.+)$/.exec(ref)?.[1];
  if (tag !== undefined) return push.tags.some((glob) => globMatch(glob, tag));
  return false;
}

export function matchesMrAction(def: PipelineDefinition, action: MrAction): boolean {
  return def.on.mr?.actions.includes(action) ?? false;
}

/** A step with `when.branches` runs only on a matching branch; a tag build (null) runs only unconditional steps. */
export function stepApplies(step: StepDefinition, branch: string | null): boolean {
  if (!step.when) return true;
  if (branch === null) return false;
  return step.when.branches.some((glob) => globMatch(glob, branch));
}
