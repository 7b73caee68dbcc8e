import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { mergeValues, parseValues, RenderError, renderTemplate, toYamlStream } from './render.js';

const vars = (values: Record<string, unknown> = {}) => ({
  image_ref: 'registry.test/app:abc',
  artifact: null,
  environment: 'staging',
  project: 'web',
  values: values as never,
});

describe('deployer template rendering', () => {
  it('substitutes whole scalars with their type and partial ones as text', () => {
    const docs = renderTemplate(
      {
        path: 'apps/web/deployment.yaml',
        text: 'kind: Deployment\nmetadata:\n  name: {{ project }}-{{environment}}\nspec:\n  replicas: {{ values.replicas }}\n  image: {{ image_ref }}\n  debug: {{ values.debug }}\n',
      },
      vars({ replicas: 3, debug: false }),
    );
    expect(docs).toEqual([
      {
        file: 'apps/web/deployment.yaml',
        object: {
          kind: 'Deployment',
          metadata: { name: 'web-staging' },
          spec: { replicas: 3, image: 'registry.test/app:abc', debug: false },
        },
      },
    ]);
  });

  it('injection attempts in values stay one scalar (newlines, ---, {, anchors, tags, key: value)', () => {
    const hostile = [
      'a\nkind: Secret',
      'x\n---\nkind: ClusterRole',
      '{ admin: true }',
      '&anchor value',
      '*anchor',
      '!!python/object:os.system ls',
      'key: value',
      '"quoted" \'single\' # comment',
      '[1, 2]',
    ];
    for (const h of hostile) {
      const docs = renderTemplate(
        {
          path: 'apps/web/a.yaml',
          text: 'kind: ConfigMap\ndata:\n  value: {{ values.v }}\n  inline: "pre-{{ values.v }}"\n',
        },
        vars({ v: h }),
      );
      expect(docs).toHaveLength(1);
      expect(docs[0]!.object).toEqual({ kind: 'ConfigMap', data: { value: h, inline: `pre-${h}` } });
      // What is written out and parsed again is the same single document.
      const stream = toYamlStream(docs);
      expect(stream.split(/^---$/m)).toHaveLength(1);
      expect(parse(stream)).toEqual(docs[0]!.object);
    }
  });

  it('a missing variable names the file, line and variable', () => {
    expect(() =>
      renderTemplate(
        { path: 'apps/web/svc.yaml', text: 'kind: Service\nspec:\n  port: {{ values.port }}\n' },
        vars(),
      ),
    ).toThrow(new RenderError('apps/web/svc.yaml', 3, 'variable values.port is not defined'));
    expect(() => renderTemplate({ path: 'f.yaml', text: 'a: {{ artifact }}\n' }, vars())).toThrow(
      'f.yaml:1: variable artifact is not defined for this deployment',
    );
  });

  it('logic and anything beyond the variables is refused', () => {
    for (const bad of [
      '{{ process.env.HOME }}',
      '{{ values.a | upper }}',
      '{% if x %}',
      '{{ constructor }}',
      '{{ values.__proto__ }}',
    ]) {
      expect(() => renderTemplate({ path: 'f.yaml', text: `a: ${bad}\n` }, vars({ a: 1 }))).toThrow(
        RenderError,
      );
    }
    expect(() =>
      renderTemplate({ path: 'f.yaml', text: 'a: {{ values.m }}\n' }, vars({ m: { x: 1 } })),
    ).toThrow('only scalar values can be substituted');
    expect(() => renderTemplate({ path: 'f.yaml', text: 'a: &x 1\nb: *x\n' }, vars())).toThrow('aliases');
  });

  it('values merge: values.yaml ← environment file ← override', () => {
    const base = parseValues({ path: 'values.yaml', text: 'replicas: 1\nenv:\n  A: "1"\n  B: "2"\n' });
    const env = parseValues({ path: 'staging.values.yaml', text: 'env:\n  B: "3"\n' });
    expect(mergeValues(base, env, { replicas: 2 })).toEqual({ replicas: 2, env: { A: '1', B: '3' } });
    expect(() => parseValues({ path: 'v.yaml', text: '- a\n' })).toThrow('values must be a YAML map');
  });
});
