import { describe, expect, it } from 'vitest';
import {
  DefinitionError,
  matchesMrAction,
  matchesPush,
  nextCronRun,
  parseDefinition,
  parseDuration,
  stepApplies,
  validateCron,
} from './definition.js';
import type { PipelineDefinition, StepDefinition } from './definition-types.js';

// biome-ignore lint/suspicious/noTemplateCurlyInString: the pipeline's own ${{ }} placeholder syntax
const SECRET_REF = '${{ secrets.NPM_TOKEN }}';
// biome-ignore lint/suspicious/noTemplateCurlyInString: the pipeline's own ${{ }} placeholder syntax
const REF_GROUP = '${{ ref }}';

const yaml = (...lines: string[]) => `${lines.join('\n')}\n`;

function errorOf(text: string): DefinitionError {
  try {
    parseDefinition(text);
  } catch (err) {
    if (err instanceof DefinitionError) return err;
    throw err;
  }
  throw new Error('expected a DefinitionError');
}

const step = (overrides: Partial<StepDefinition>): StepDefinition => ({
  name: 'x',
  image: null,
  commands: ['true'],
  environment: {},
  depends_on: [],
  timeout_seconds: null,
  when: null,
  allow_failure: false,
  publish: null,
  network: 'host',
  ...overrides,
});

/** One step `a` running `true`, plus the given lines under `pipeline:` (indented two spaces). */
const withSteps = (...extra: string[]) =>
  yaml('pipeline:', '  steps:', '    - name: a', '      commands: [ "true" ]', ...extra);

describe('parseDefinition', () => {
  it('parses the example from the spec', () => {
    const def = parseDefinition(
      yaml(
        'pipeline:',
        '  steps:',
        '    - name: test',
        '      image: node:20            # used by the kubernetes runner; the local runner notes it',
        '      commands: [npm ci, npm test]',
        `      environment: { NODE_ENV: test, TOKEN: "${SECRET_REF}" }`,
        '    - name: package',
        '      depends_on: [test]',
        '      commands: [tar czf app.tgz dist]',
        '      publish:',
        '        artifact: app.tgz        # or image: $REGISTRY/$PROJECT:$COMMIT_SHA',
        '        environment: production',
        '  artifacts:',
        '    - { name: coverage, path: coverage/, expires: 7d }',
        '  on:',
        '    push: { branches: [main, "release/*"] }',
        '    mr:   { actions: [opened, synchronized] }',
        '    schedule: ["0 3 * * *"]',
      ),
    );
    expect(def).toEqual<PipelineDefinition>({
      steps: [
        step({
          name: 'test',
          image: 'node:20',
          commands: ['npm ci', 'npm test'],
          environment: { NODE_ENV: 'test', TOKEN: SECRET_REF },
        }),
        step({
          name: 'package',
          commands: ['tar czf app.tgz dist'],
          depends_on: ['test'],
          publish: { artifact: 'app.tgz', environment: 'production' },
        }),
      ],
      artifacts: [{ name: 'coverage', path: 'coverage/', expires_seconds: 7 * 86400 }],
      on: {
        push: { branches: ['main', 'release/*'], tags: [] },
        mr: { actions: ['opened', 'synchronized'] },
        schedule: ['0 3 * * *'],
        api: true,
      },
      concurrency: null,
    });
  });

  it('accepts the keys at the top level without pipeline:', () => {
    const def = parseDefinition(yaml('steps:', '  - name: a', '    commands: [make]'));
    expect(def.steps).toEqual([step({ name: 'a', commands: ['make'] })]);
  });

  it('defaults: no on → push on every branch, no tags, api allowed; no artifacts, no concurrency', () => {
    const def = parseDefinition(withSteps());
    expect(def.on).toEqual({ push: { branches: ['*'], tags: [] }, mr: null, schedule: [], api: true });
    expect(def.artifacts).toEqual([]);
    expect(def.concurrency).toBeNull();
  });

  it('reads every step option', () => {
    const def = parseDefinition(
      yaml(
        'pipeline:',
        '  steps:',
        '    - name: build.v2_x-1',
        '      image: alpine:3',
        '      commands:',
        `        - 'echo "a: b"'`,
        '        - |',
        '          multi',
        '          line',
        '      environment: { N: 1.10, HEX: 0x1F, FLAG: true, S: "007", EMPTY: "" }',
        '      timeout: 1h30m',
        '      when: { branch: main }',
        '      allow_failure: true',
        '      publish: { image: "$REGISTRY/$PROJECT:$COMMIT_SHA", environment: staging-2 }',
        '      network: none',
        '    - name: other',
        '      commands: [x]',
        '      timeout: 90',
        '      when: { branches: [main, "release/*"] }',
        '      depends_on: [build.v2_x-1, build.v2_x-1]',
      ),
    );
    expect(def.steps).toEqual([
      step({
        name: 'build.v2_x-1',
        image: 'alpine:3',
        commands: ['echo "a: b"', 'multi\nline\n'],
        environment: { N: '1.10', HEX: '0x1F', FLAG: 'true', S: '007', EMPTY: '' },
        timeout_seconds: 5400,
        when: { branches: ['main'] },
        allow_failure: true,
        publish: { image: '$REGISTRY/$PROJECT:$COMMIT_SHA', environment: 'staging-2' },
        network: 'none',
      }),
      step({
        name: 'other',
        commands: ['x'],
        timeout_seconds: 90,
        when: { branches: ['main', 'release/*'] },
        depends_on: ['build.v2_x-1'],
      }),
    ]);
  });

  it('allows depends_on to name a later step', () => {
    const def = parseDefinition(
      yaml('steps:', '  - { name: a, commands: [x], depends_on: [b] }', '  - { name: b, commands: [x] }'),
    );
    expect(def.steps.map((s) => s.depends_on)).toEqual([['b'], []]);
  });

  it('resolves YAML anchors and aliases', () => {
    const def = parseDefinition(
      yaml(
        'steps:',
        '  - name: a',
        '    commands: &cmds [make, make test]',
        '    environment: &env { A: x }',
        '  - { name: b, commands: *cmds, environment: *env }',
      ),
    );
    expect(def.steps[1]).toEqual(
      step({ name: 'b', commands: ['make', 'make test'], environment: { A: 'x' } }),
    );
  });

  it.each<[string, string[], PipelineDefinition['on']]>([
    [
      'push: true',
      ['  on:', '    push: true'],
      { push: { branches: ['*'], tags: [] }, mr: null, schedule: [], api: true },
    ],
    [
      'push: (empty)',
      ['  on:', '    push:'],
      { push: { branches: ['*'], tags: [] }, mr: null, schedule: [], api: true },
    ],
    [
      'push: false, api: false',
      ['  on: { push: false, api: false }'],
      { push: null, mr: null, schedule: [], api: false },
    ],
    ['on without push', ['  on: { api: true }'], { push: null, mr: null, schedule: [], api: true }],
    [
      'branch string and tag list',
      ['  on:', '    push: { branches: main, tags: ["v*", "release-[0-9]*"] }'],
      { push: { branches: ['main'], tags: ['v*', 'release-[0-9]*'] }, mr: null, schedule: [], api: true },
    ],
    [
      'tags only',
      ['  on:', '    push: { tags: "v*" }'],
      { push: { branches: [], tags: ['v*'] }, mr: null, schedule: [], api: true },
    ],
    [
      'mr: true',
      ['  on: { mr: true }'],
      { push: null, mr: { actions: ['opened', 'synchronized'] }, schedule: [], api: true },
    ],
    [
      'mr: (empty)',
      ['  on:', '    mr:'],
      { push: null, mr: { actions: ['opened', 'synchronized'] }, schedule: [], api: true },
    ],
    [
      'mr actions with duplicates',
      ['  on: { mr: { actions: [reopened, opened, reopened] } }'],
      { push: null, mr: { actions: ['reopened', 'opened'] }, schedule: [], api: true },
    ],
    [
      'schedule as a single string',
      ['  on: { schedule: "@daily" }'],
      { push: null, mr: null, schedule: ['@daily'], api: true },
    ],
    [
      'several schedules',
      ['  on:', '    schedule:', '      - "*/15 * * * 1-5"', '      - "0 0 1 JAN *"'],
      { push: null, mr: null, schedule: ['*/15 * * * 1-5', '0 0 1 JAN *'], api: true },
    ],
  ])('triggers: %s', (_name, lines, expected) => {
    expect(parseDefinition(withSteps(...lines)).on).toEqual(expected);
  });

  it.each<[string, string[], PipelineDefinition['concurrency']]>([
    [
      'a mapping',
      ['  concurrency: { group: "deploy-$COMMIT_BRANCH", cancel_in_progress: true }'],
      {
        group: 'deploy-$COMMIT_BRANCH',
        cancel_in_progress: true,
      },
    ],
    ['a mapping without cancel', ['  concurrency: { group: g }'], { group: 'g', cancel_in_progress: false }],
    ['a bare group name', [`  concurrency: "${REF_GROUP}"`], { group: REF_GROUP, cancel_in_progress: false }],
  ])('concurrency as %s', (_name, lines, expected) => {
    expect(parseDefinition(withSteps(...lines)).concurrency).toEqual(expected);
  });

  it('reads artifacts with and without expiry', () => {
    const def = parseDefinition(
      withSteps(
        '  artifacts:',
        '    - { name: dist, path: ./dist }',
        '    - { name: log, path: out/a.log, expires: 12h }',
      ),
    );
    expect(def.artifacts).toEqual([
      { name: 'dist', path: './dist', expires_seconds: null },
      { name: 'log', path: 'out/a.log', expires_seconds: 43200 },
    ]);
  });

  it('accepts exactly 100 steps and 200 commands', () => {
    const commands = Array.from({ length: 200 }, (_, i) => `echo ${i}`);
    const steps = Array.from(
      { length: 100 },
      (_, i) => `  - { name: s${i}, commands: ${JSON.stringify(commands)} }`,
    );
    const def = parseDefinition(yaml('steps:', ...steps));
    expect(def.steps).toHaveLength(100);
    expect(def.steps[99]!.commands).toHaveLength(200);
  });

  it('DefinitionError carries the key and the line', () => {
    const err = errorOf(yaml('pipeline:', '  steps:', '    - name: a', '      commands: make'));
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('DefinitionError');
    expect(err.key).toBe('steps[0].commands');
    expect(err.line).toBe(4);
    expect(err.message).toBe('steps[0].commands: expected a list of strings (line 4)');
  });

  it.each<[string, string, string]>([
    // File-level problems
    ['empty file', '', 'the definition is empty (expected a "pipeline:" mapping with "steps")'],
    [
      'only comments',
      '# nothing here\n',
      'the definition is empty (expected a "pipeline:" mapping with "steps")',
    ],
    [
      'a list at the top',
      '- a\n- b\n',
      'expected a mapping with "pipeline:" at the top level, got a list (line 1)',
    ],
    [
      'a string at the top',
      'hello\n',
      'expected a mapping with "pipeline:" at the top level, got a string (line 1)',
    ],
    ['pipeline is not a mapping', 'pipeline: [a]\n', 'pipeline: expected a mapping with steps (line 1)'],
    ['pipeline is empty', 'pipeline:\n', 'pipeline: expected a mapping with steps (line 1)'],
    [
      'a key beside pipeline',
      yaml('pipeline:', '  steps: []', 'steps: []'),
      'steps: unknown key (expected one of: pipeline) (line 3)',
    ],
    [
      'a misspelt pipeline',
      yaml('pipline:', '  steps: []'),
      'pipline: unknown key (did you mean "pipeline"?) (line 1)',
    ],
    [
      'YAML syntax: unclosed flow list',
      yaml('pipeline:', '  steps:', '    - name: a', '      commands: [make', '  on: {}'),
      'YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ] (line 5)',
    ],
    [
      'YAML syntax: duplicate key',
      yaml('pipeline:', '  steps:', '    - name: a', '      name: b'),
      'YAML syntax error: Map keys must be unique (line 4)',
    ],
    [
      'YAML syntax: tab indentation',
      yaml('pipeline:', '\tsteps: []'),
      'YAML syntax error: Tabs are not allowed as indentation (line 2)',
    ],
    // Steps
    ['steps missing', yaml('pipeline:', '  on: {}'), 'steps: required (line 2)'],
    ['steps not a list', yaml('pipeline:', '  steps: { a: 1 }'), 'steps: expected a list of steps (line 2)'],
    ['steps empty', yaml('pipeline:', '  steps: []'), 'steps: must contain at least one step (line 2)'],
    ['a step that is a string', yaml('steps:', '  - build'), 'steps[0]: expected a mapping (line 2)'],
    ['name missing', yaml('steps:', '  - image: x', '    commands: [a]'), 'steps[0].name: required (line 2)'],
    [
      'name not a string',
      yaml('steps:', '  - name: [a]', '    commands: [a]'),
      'steps[0].name: expected a string (line 2)',
    ],
    [
      'name empty',
      yaml('steps:', '  - name: ""', '    commands: [a]'),
      'steps[0].name: must not be empty (line 2)',
    ],
    [
      'name with a space',
      yaml('steps:', '  - name: my step', '    commands: [a]'),
      'steps[0].name: invalid name "my step": letters, digits, "_", "." and "-", starting with a letter or digit, at most 63 characters (line 2)',
    ],
    [
      'name starting with a dash',
      yaml('steps:', '  - name: "-a"', '    commands: [a]'),
      'steps[0].name: invalid name "-a": letters, digits, "_", "." and "-", starting with a letter or digit, at most 63 characters (line 2)',
    ],
    [
      'name of 64 characters',
      yaml('steps:', `  - name: ${'a'.repeat(64)}`, '    commands: [a]'),
      `steps[0].name: invalid name "${'a'.repeat(64)}": letters, digits, "_", "." and "-", starting with a letter or digit, at most 63 characters (line 2)`,
    ],
    [
      'duplicate step names',
      yaml('steps:', '  - name: a', '    commands: [x]', '  - name: a', '    commands: [y]'),
      'steps[1].name: duplicate step name "a" (first used on line 2) (line 4)',
    ],
    [
      'unknown step key with a suggestion',
      yaml('steps:', '  - name: a', '    comands: [x]'),
      'steps[0].comands: unknown key (did you mean "commands"?) (line 3)',
    ],
    [
      'unknown network mode',
      yaml('steps:', '  - name: a', '    commands: [x]', '    network: bridge'),
      'steps[0].network: unknown network "bridge" (expected one of: host, none) (line 4)',
    ],
    [
      'unknown step key without a suggestion',
      yaml('steps:', '  - name: a', '    commands: [x]', '    services: [db]'),
      'steps[0].services: unknown key (expected one of: name, image, commands, environment, depends_on, timeout, when, allow_failure, publish, network) (line 4)',
    ],
    [
      'unknown top-level key with a suggestion',
      withSteps('  artefacts: []'),
      'artefacts: unknown key (did you mean "artifacts"?) (line 5)',
    ],
    [
      'image not a string',
      yaml('steps:', '  - name: a', '    image: [x]', '    commands: [x]'),
      'steps[0].image: expected a string (line 3)',
    ],
    // Commands
    ['commands missing', yaml('steps:', '  - name: a'), 'steps[0].commands: required (line 2)'],
    [
      'commands as a single string',
      yaml(
        'pipeline:',
        '  steps:',
        '    - name: a',
        '      commands: [x]',
        '    - name: b',
        '      image: alpine',
        '      commands: make test',
      ),
      'steps[1].commands: expected a list of strings (line 7)',
    ],
    [
      'commands empty',
      yaml('steps:', '  - name: a', '    commands: []'),
      'steps[0].commands: must contain at least one command (line 3)',
    ],
    [
      'commands null',
      yaml('steps:', '  - name: a', '    commands:'),
      'steps[0].commands: expected a list of strings (line 3)',
    ],
    [
      'a command that YAML reads as a mapping',
      yaml('steps:', '  - name: a', '    commands:', '      - make', '      - echo result: ok'),
      'steps[0].commands[1]: expected a string (quote a command that contains ": ") (line 5)',
    ],
    [
      'a number as a command',
      yaml('steps:', '  - name: a', '    commands:', '      - 42'),
      'steps[0].commands[0]: expected a string (line 4)',
    ],
    [
      '201 commands',
      yaml(
        'steps:',
        '  - name: a',
        `    commands: ${JSON.stringify(Array.from({ length: 201 }, () => 'x'))}`,
      ),
      'steps[0].commands: at most 200 commands per step (got 201) (line 3)',
    ],
    [
      '101 steps',
      yaml('steps:', ...Array.from({ length: 101 }, (_, i) => `  - { name: s${i}, commands: [x] }`)),
      'steps: at most 100 steps (got 101) (line 2)',
    ],
    // Environment
    [
      'environment as a list',
      yaml('steps:', '  - name: a', '    commands: [x]', '    environment: [A=1]'),
      'steps[0].environment: expected a mapping (line 4)',
    ],
    [
      'environment key with a dash',
      yaml('steps:', '  - name: a', '    commands: [x]', '    environment:', '      MY-VAR: 1'),
      'steps[0].environment.MY-VAR: invalid variable name: letters, digits and "_", not starting with a digit (line 5)',
    ],
    [
      'environment key starting with a digit',
      yaml('steps:', '  - name: a', '    commands: [x]', '    environment: { 1A: x }'),
      'steps[0].environment.1A: invalid variable name: letters, digits and "_", not starting with a digit (line 4)',
    ],
    [
      'environment value that is a list',
      yaml('steps:', '  - name: a', '    commands: [x]', '    environment:', '      A: [1, 2]'),
      'steps[0].environment.A: expected a string, number or boolean (line 5)',
    ],
    [
      'environment value left empty',
      yaml('steps:', '  - name: a', '    commands: [x]', '    environment:', '      A:'),
      'steps[0].environment.A: expected a string, number or boolean (line 5)',
    ],
    // depends_on
    [
      'depends_on as a string',
      yaml('steps:', '  - { name: a, commands: [x] }', '  - { name: b, commands: [x], depends_on: a }'),
      'steps[1].depends_on: expected a list of step names (line 3)',
    ],
    [
      'depends_on an unknown step, with a suggestion',
      yaml(
        'steps:',
        '  - { name: test, commands: [x] }',
        '  - name: b',
        '    commands: [x]',
        '    depends_on: [tset]',
      ),
      'steps[1].depends_on[0]: unknown step "tset" (did you mean "test"?) (line 5)',
    ],
    [
      'depends_on an unknown step',
      yaml(
        'steps:',
        '  - { name: a, commands: [x] }',
        '  - name: b',
        '    commands: [x]',
        '    depends_on:',
        '      - a',
        '      - deploy',
      ),
      'steps[1].depends_on[1]: unknown step "deploy" (line 7)',
    ],
    [
      'depends_on itself',
      yaml('steps:', '  - name: a', '    commands: [x]', '    depends_on: [a]'),
      'steps[0].depends_on[0]: a step cannot depend on itself (line 4)',
    ],
    [
      'depends_on a number',
      yaml('steps:', '  - name: a', '    commands: [x]', '    depends_on: [1]'),
      'steps[0].depends_on[0]: expected a string (line 4)',
    ],
    // timeout
    [
      'timeout zero',
      yaml('steps:', '  - { name: a, commands: [x], timeout: 0 }'),
      'steps[0].timeout: must be between 1s and 24h (line 2)',
    ],
    [
      'timeout over 24h',
      yaml('steps:', '  - { name: a, commands: [x], timeout: 25h }'),
      'steps[0].timeout: must be between 1s and 24h (line 2)',
    ],
    [
      'timeout fractional',
      yaml('steps:', '  - { name: a, commands: [x], timeout: 1.5 }'),
      'steps[0].timeout: expected a duration like "10m" or a whole number of seconds (line 2)',
    ],
    [
      'timeout unparsable',
      yaml('steps:', '  - name: a', '    commands: [x]', '    timeout: ten minutes'),
      'steps[0].timeout: invalid duration "ten minutes": expected a number followed by d, h, m or s, largest unit first (e.g. "10m", "1h30m", "7d") (line 4)',
    ],
    [
      'timeout as a list',
      yaml('steps:', '  - { name: a, commands: [x], timeout: [1] }'),
      'steps[0].timeout: expected a duration like "10m" or a whole number of seconds (line 2)',
    ],
    // when
    [
      'when with both forms',
      yaml('steps:', '  - name: a', '    commands: [x]', '    when: { branch: main, branches: [dev] }'),
      'steps[0].when: use either branch or branches, not both (line 4)',
    ],
    [
      'when without a branch',
      yaml('steps:', '  - name: a', '    commands: [x]', '    when: {}'),
      'steps[0].when: expected branch or branches (line 4)',
    ],
    [
      'when with an unknown key',
      yaml('steps:', '  - name: a', '    commands: [x]', '    when:', '      event: push'),
      'steps[0].when.event: unknown key (expected one of: branch, branches) (line 5)',
    ],
    [
      'when.branches empty',
      yaml('steps:', '  - name: a', '    commands: [x]', '    when:', '      branches: []'),
      'steps[0].when.branches: must not be empty (line 5)',
    ],
    [
      'when as a string',
      yaml('steps:', '  - name: a', '    commands: [x]', '    when: main'),
      'steps[0].when: expected a mapping (line 4)',
    ],
    // allow_failure
    [
      'allow_failure as a string',
      yaml('steps:', '  - name: a', '    commands: [x]', '    allow_failure: "yes"'),
      'steps[0].allow_failure: expected true or false (line 4)',
    ],
    [
      'allow_failure as YAML 1.1 yes',
      yaml('steps:', '  - name: a', '    commands: [x]', '    allow_failure: yes'),
      'steps[0].allow_failure: expected true or false (line 4)',
    ],
    // publish
    [
      'publish with both artifact and image',
      yaml(
        'steps:',
        '  - name: a',
        '    commands: [x]',
        '    publish: { artifact: a.tgz, image: x, environment: prod }',
      ),
      'steps[0].publish: expected exactly one of artifact or image (line 4)',
    ],
    [
      'publish with neither artifact nor image',
      yaml('steps:', '  - name: a', '    commands: [x]', '    publish:', '      environment: prod'),
      'steps[0].publish: expected exactly one of artifact or image (line 5)',
    ],
    [
      'publish without environment',
      yaml('steps:', '  - name: a', '    commands: [x]', '    publish:', '      artifact: a.tgz'),
      'steps[0].publish.environment: required (line 5)',
    ],
    [
      'publish to an environment that is not a DNS label',
      yaml(
        'steps:',
        '  - name: a',
        '    commands: [x]',
        '    publish:',
        '      artifact: a.tgz',
        '      environment: Prod_1',
      ),
      'steps[0].publish.environment: invalid environment "Prod_1": lower-case letters, digits and "-" (a DNS label) (line 6)',
    ],
    [
      'publish an absolute artifact path',
      yaml(
        'steps:',
        '  - name: a',
        '    commands: [x]',
        '    publish:',
        '      artifact: /etc/passwd',
        '      environment: prod',
      ),
      'steps[0].publish.artifact: must be a path relative to the workspace (line 5)',
    ],
    [
      'publish with an unknown key',
      yaml(
        'steps:',
        '  - name: a',
        '    commands: [x]',
        '    publish:',
        '      artefact: a.tgz',
        '      environment: prod',
      ),
      'steps[0].publish.artefact: unknown key (did you mean "artifact"?) (line 5)',
    ],
    // artifacts
    [
      'artifacts as a mapping',
      withSteps('  artifacts: { a: b }'),
      'artifacts: expected a list of artifacts (line 5)',
    ],
    [
      'artifact as a string',
      withSteps('  artifacts: [dist]'),
      'artifacts[0]: expected a mapping with name and path (line 5)',
    ],
    [
      'artifact without a path',
      withSteps('  artifacts:', '    - name: dist'),
      'artifacts[0].path: required (line 6)',
    ],
    [
      'artifact without a name',
      withSteps('  artifacts:', '    - path: dist'),
      'artifacts[0].name: required (line 6)',
    ],
    [
      'artifact path with ..',
      withSteps('  artifacts:', '    - name: dist', '      path: build/../../secret'),
      'artifacts[0].path: must not contain ".." (line 7)',
    ],
    [
      'artifact path absolute',
      withSteps('  artifacts:', '    - { name: d, path: /tmp/x }'),
      'artifacts[0].path: must be a path relative to the workspace (line 6)',
    ],
    [
      'duplicate artifact names',
      withSteps('  artifacts:', '    - { name: d, path: a }', '    - { name: d, path: b }'),
      'artifacts[1].name: duplicate artifact name "d" (first used on line 6) (line 7)',
    ],
    [
      'artifact expiry unparsable',
      withSteps('  artifacts:', '    - { name: d, path: a, expires: 1w }'),
      'artifacts[0].expires: invalid duration "1w": expected a number followed by d, h, m or s, largest unit first (e.g. "10m", "1h30m", "7d") (line 6)',
    ],
    [
      'artifact expiry over a year',
      withSteps('  artifacts:', '    - { name: d, path: a, expires: 366d }'),
      'artifacts[0].expires: must be between 1s and 365d (line 6)',
    ],
    // on
    ['on as a list', withSteps('  on: [push]'), 'on: expected a mapping (line 5)'],
    [
      'on with an unknown trigger',
      withSteps('  on:', '    pull_request: {}'),
      'on.pull_request: unknown key (expected one of: push, mr, schedule, api) (line 6)',
    ],
    [
      'push as a string',
      withSteps('  on:', '    push: main'),
      'on.push: expected true, false or a mapping with branches and tags (line 6)',
    ],
    [
      'push.branch (singular)',
      withSteps('  on:', '    push:', '      branch: main'),
      'on.push.branch: unknown key (did you mean "branches"?) (line 7)',
    ],
    [
      'push.branches empty',
      withSteps('  on:', '    push: { branches: [] }'),
      'on.push.branches: must not be empty (line 6)',
    ],
    [
      'push.tags with a number',
      withSteps('  on:', '    push: { tags: [1] }'),
      'on.push.tags[0]: expected a string (line 6)',
    ],
    [
      'mr with an unknown action',
      withSteps('  on:', '    mr:', '      actions:', '        - opened', '        - closed'),
      'on.mr.actions[1]: unknown action "closed" (expected one of: opened, synchronized, reopened) (line 9)',
    ],
    [
      'mr actions empty',
      withSteps('  on:', '    mr: { actions: [] }'),
      'on.mr.actions: must not be empty (line 6)',
    ],
    [
      'mr as a number',
      withSteps('  on:', '    mr: 1'),
      'on.mr: expected true, false or a mapping with actions (line 6)',
    ],
    [
      'schedule with an out-of-range minute',
      withSteps('  on:', '    schedule:', '      - "0 3 * * *"', '      - "61 * * * *"'),
      'on.schedule[1]: invalid cron expression "61 * * * *": Constraint error, got value 61 expected range 0-59 (line 8)',
    ],
    [
      'schedule with six fields',
      withSteps('  on:', '    schedule: ["0 0 3 * * *"]'),
      'on.schedule[0]: invalid cron expression "0 0 3 * * *": expected 5 fields (minute hour day-of-month month day-of-week), got 6 (line 6)',
    ],
    [
      'schedule with a number',
      withSteps('  on:', '    schedule: [5]'),
      'on.schedule[0]: expected a cron expression string (line 6)',
    ],
    ['api as a string', withSteps('  on: { api: "no" }'), 'on.api: expected true or false (line 5)'],
    // concurrency
    [
      'concurrency without group',
      withSteps('  concurrency: { cancel_in_progress: true }'),
      'concurrency.group: required (line 5)',
    ],
    [
      'concurrency with an unknown key',
      withSteps('  concurrency:', '    group: g', '    cancel: true'),
      'concurrency.cancel: unknown key (did you mean "cancel_in_progress"?) (line 7)',
    ],
    [
      'concurrency.cancel_in_progress as a string',
      withSteps('  concurrency: { group: g, cancel_in_progress: "true" }'),
      'concurrency.cancel_in_progress: expected true or false (line 5)',
    ],
  ])('rejects %s', (_name, text, message) => {
    expect(errorOf(text).message).toBe(message);
  });

  it.each<[string, string]>([
    [
      'a -> b -> a',
      yaml(
        'steps:',
        '  - { name: a, commands: [x], depends_on: [b] }',
        '  - { name: b, commands: [x], depends_on: [a] }',
      ),
    ],
    [
      'b -> c -> d -> b',
      yaml(
        'steps:',
        '  - { name: a, commands: [x] }',
        '  - name: b',
        '    commands: [x]',
        '    depends_on: [a, c]',
        '  - { name: c, commands: [x], depends_on: [d] }',
        '  - { name: d, commands: [x], depends_on: [b] }',
      ),
    ],
  ])('rejects the dependency cycle %s', (cycle, text) => {
    const err = errorOf(text);
    expect(err.message).toMatch(
      new RegExp(`^steps\\[\\d\\]\\.depends_on: dependency cycle: ${cycle} \\(line \\d\\)$`),
    );
  });

  it('names the step where the cycle starts, with its line', () => {
    const err = errorOf(
      yaml(
        'steps:',
        '  - { name: a, commands: [x] }',
        '  - name: b',
        '    commands: [x]',
        '    depends_on: [a, c]',
        '  - { name: c, commands: [x], depends_on: [b] }',
      ),
    );
    expect(err.message).toBe('steps[1].depends_on: dependency cycle: b -> c -> b (line 5)');
    expect(err.key).toBe('steps[1].depends_on');
    expect(err.line).toBe(5);
  });

  it('accepts a diamond (not a cycle)', () => {
    const def = parseDefinition(
      yaml(
        'steps:',
        '  - { name: a, commands: [x] }',
        '  - { name: b, commands: [x], depends_on: [a] }',
        '  - { name: c, commands: [x], depends_on: [a] }',
        '  - { name: d, commands: [x], depends_on: [b, c] }',
      ),
    );
    expect(def.steps.map((s) => s.depends_on)).toEqual([[], ['a'], ['a'], ['b', 'c']]);
  });

  it('rejects a file over 256 KiB', () => {
    const text = withSteps(`# ${'x'.repeat(256 * 1024)}`);
    const err = errorOf(text);
    expect(err.message).toBe(
      `the definition is too large (${Buffer.byteLength(text)} bytes, at most 262144)`,
    );
    expect(err.key).toBe('');
    expect(err.line).toBeNull();
  });
});

describe('trigger matching', () => {
  const def = (on: Partial<PipelineDefinition['on']>): PipelineDefinition => ({
    steps: [step({})],
    artifacts: [],
    on: { push: null, mr: null, schedule: [], api: true, ...on },
    concurrency: null,
  });
  const push = def({ push: { branches: ['main', 'release/*', 'feat-?'], tags: ['v[0-9]*'] } });

  it.each<[string, boolean]>([
    ['refs/heads/main', true],
    ['refs/heads/mainline', false],
    ['refs/heads/release/1.0', true],
    ['refs/heads/release/a/b', true],
    ['refs/heads/release', false],
    ['refs/heads/feat-x', true],
    ['refs/heads/feat-xy', false],
    ['refs/tags/v1.2.3', true],
    ['refs/tags/version', false],
    ['refs/tags/main', false],
    ['refs/heads/v1', false],
    ['refs/notes/main', false],
    ['main', false],
  ])('push of %s → %s', (ref, expected) => {
    expect(matchesPush(push, ref)).toBe(expected);
  });

  it('the default (no on:) builds every branch but no tag', () => {
    const parsed = parseDefinition(withSteps());
    expect(matchesPush(parsed, 'refs/heads/any/thing')).toBe(true);
    expect(matchesPush(parsed, 'refs/tags/v1')).toBe(false);
  });

  it('no push trigger matches nothing', () => {
    expect(matchesPush(def({}), 'refs/heads/main')).toBe(false);
  });

  it.each<[PipelineDefinition['on']['mr'], string, boolean]>([
    [{ actions: ['opened', 'synchronized'] }, 'opened', true],
    [{ actions: ['opened', 'synchronized'] }, 'synchronized', true],
    [{ actions: ['opened', 'synchronized'] }, 'reopened', false],
    [{ actions: ['reopened'] }, 'reopened', true],
    [null, 'opened', false],
  ])('mr %j, action %s → %s', (mr, action, expected) => {
    expect(matchesMrAction(def({ mr }), action as 'opened')).toBe(expected);
  });

  it.each<[StepDefinition['when'], string | null, boolean]>([
    [null, 'main', true],
    [null, null, true],
    [{ branches: ['main'] }, 'main', true],
    [{ branches: ['main'] }, 'dev', false],
    [{ branches: ['main'] }, null, false],
    [{ branches: ['dev', 'release/*'] }, 'release/2', true],
    [{ branches: ['*'] }, 'anything', true],
    [{ branches: ['*'] }, null, false],
  ])('step when %j on branch %s → %s', (when, branch, expected) => {
    expect(stepApplies(step({ when }), branch)).toBe(expected);
  });
});

describe('parseDuration', () => {
  it.each<[string, number]>([
    ['45s', 45],
    ['30m', 1800],
    ['12h', 43200],
    ['7d', 604800],
    ['1h30m', 5400],
    ['1d2h3m4s', 93784],
    [' 10m ', 600],
    ['0s', 0],
    ['90m', 5400],
  ])('%s → %i seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each(['', '10', 'm', '10x', '1.5h', '-1m', '30m1h', '1h1h', '1 h', '1H', 'abc'])(
    'rejects %j',
    (text) => {
      expect(() => parseDuration(text)).toThrow(
        `invalid duration ${JSON.stringify(text)}: expected a number followed by d, h, m or s, largest unit first (e.g. "10m", "1h30m", "7d")`,
      );
    },
  );

  it('rejects a duration too large to count', () => {
    expect(() => parseDuration('99999999999999999999d')).toThrow(
      'invalid duration "99999999999999999999d": too large',
    );
  });
});

describe('cron', () => {
  it.each<[string, string, string]>([
    ['0 3 * * *', '2026-01-01T05:00:00Z', '2026-01-02T03:00:00.000Z'],
    ['0 3 * * *', '2026-01-01T02:59:59.999Z', '2026-01-01T03:00:00.000Z'],
    ['0 3 * * *', '2026-01-01T03:00:00.000Z', '2026-01-02T03:00:00.000Z'],
    ['*/15 * * * *', '2026-01-01T10:07:30Z', '2026-01-01T10:15:00.000Z'],
    ['0 9 * * 1-5', '2026-01-02T10:00:00Z', '2026-01-05T09:00:00.000Z'],
    ['30 0 1 * *', '2026-01-31T12:00:00Z', '2026-02-01T00:30:00.000Z'],
    ['0 0 29 2 *', '2026-03-01T00:00:00Z', '2028-02-29T00:00:00.000Z'],
    ['0 0 * * thu', '2026-01-01T00:00:00Z', '2026-01-08T00:00:00.000Z'],
    ['@daily', '2026-01-01T12:00:00Z', '2026-01-02T00:00:00.000Z'],
    ['@hourly', '2026-01-01T12:00:00Z', '2026-01-01T13:00:00.000Z'],
  ])('%s after %s → %s (UTC)', (expr, after, next) => {
    expect(nextCronRun(expr, new Date(after)).toISOString()).toBe(next);
  });

  it.each<[string, string]>([
    ['', 'it is empty'],
    ['* * *', 'expected 5 fields (minute hour day-of-month month day-of-week), got 3'],
    ['0 0 3 * * *', 'expected 5 fields (minute hour day-of-month month day-of-week), got 6'],
    ['61 * * * *', 'Constraint error, got value 61 expected range 0-59'],
    ['0 24 * * *', 'Constraint error, got value 24 expected range 0-23'],
    ['0 0 * * 8', 'Constraint error, got value 8 expected range 0-7'],
    ['0 0 31 2 *', 'Invalid explicit day of month definition'],
    ['5-1 * * * *', 'Invalid range: 5-1, min(5) > max(1)'],
    ['a b c d e', 'Invalid characters, got value: a'],
    ['H * * * *', 'the H (hash) character is not supported'],
    [
      '@secondly',
      'unknown alias (use one of @yearly, @annually, @monthly, @weekly, @daily, @hourly, @minutely, @weekdays, @weekends)',
    ],
  ])('rejects %j: %s', (expr, reason) => {
    expect(() => validateCron(expr)).toThrow(`invalid cron expression ${JSON.stringify(expr)}: ${reason}`);
    expect(() => nextCronRun(expr, new Date())).toThrow(reason);
  });

  it('accepts the usual forms', () => {
    for (const expr of [
      '* * * * *',
      '0 0 L * *',
      '0 0 * * 1#2',
      '0 0 1 JAN,JUL *',
      '@weekly',
      '0-30/10 8-18 * * MON-FRI',
    ]) {
      expect(() => validateCron(expr)).not.toThrow();
    }
  });
});
