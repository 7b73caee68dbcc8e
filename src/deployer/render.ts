import { isMap, parseAllDocuments, Scalar, stringify, visit } from 'yaml';
import type { JsonObject, JsonValue } from '../store/schema.js';

/**
 * The deployer's template engine: logic-light substitution of `{{ name }}` placeholders, nothing
 * else (no expressions, filters, loops, includes or access to anything but the variables given).
 *
 * Placeholders are swapped for inert tokens before the template is parsed as YAML, and the tokens
 * are replaced in the parsed document by scalar nodes: a placeholder that is a whole scalar becomes
 * the value with its type (string, number, boolean, null); one inside a longer scalar becomes text
 * in that string. The YAML writer then quotes what needs quoting, so no value (newlines, `---`,
 * `{`, `&anchor`, `!!tag`, `key: value`) can add structure: it is always one scalar.
 */

export interface RenderVariables {
  image_ref: string | null;
  artifact: string | null;
  environment: string;
  project: string;
  values: JsonObject;
}

export interface TemplateFile {
  /** Path shown in errors (e.g. `apps/web/deployment.yaml`). */
  path: string;
  text: string;
}

/** A template could not be rendered: the file, line and what is wrong. */
export class RenderError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | null,
    readonly problem: string,
  ) {
    super(`${file}${line ? `:${line}` : ''}: ${problem}`);
    this.name = 'RenderError';
  }
}

export interface RenderedDocument {
  /** The file it came from. */
  file: string;
  /** The object, as plain data. */
  object: JsonObject;
}

const PLACEHOLDER = /\{\{(.*?)\}\}/gs;
const VARIABLE = /^(image_ref|artifact|environment|project|values(\.[A-Za-z_][A-Za-z0-9_-]*)+)$/;
const MAX_TEMPLATE_BYTES = 256 * 1024;

type Scalarish = string | number | boolean | null;

function lineOf(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function lookup(vars: RenderVariables, name: string, file: string, line: number): Scalarish {
  if (name === 'image_ref' || name === 'artifact') {
    const v = vars[name];
    if (v === null) throw new RenderError(file, line, `variable ${name} is not defined for this deployment`);
    return v;
  }
  if (name === 'environment' || name === 'project') return vars[name];
  let cur: JsonValue | undefined = vars.values;
  for (const part of name.split('.').slice(1)) {
    cur =
      cur !== null && typeof cur === 'object' && !Array.isArray(cur) && Object.hasOwn(cur, part)
        ? cur[part]
        : undefined;
    if (cur === undefined) throw new RenderError(file, line, `variable ${name} is not defined`);
  }
  if (cur !== null && typeof cur === 'object')
    throw new RenderError(
      file,
      line,
      `variable ${name} is a map or a list; only scalar values can be substituted`,
    );
  return cur as Scalarish;
}

/** Renders one template file into its YAML documents (empty documents are skipped). */
export function renderTemplate(file: TemplateFile, vars: RenderVariables): RenderedDocument[] {
  if (Buffer.byteLength(file.text) > MAX_TEMPLATE_BYTES)
    throw new RenderError(file.path, null, `template larger than ${MAX_TEMPLATE_BYTES} bytes`);
  const values: Scalarish[] = [];
  const nonce = Math.random().toString(36).slice(2, 10);
  const tokenText = (i: number) => `__platform_tpl_${nonce}_${i}__`;
  const substituted = file.text.replace(PLACEHOLDER, (_m, inner: string, offset: number) => {
    const name = inner.trim();
    const line = lineOf(file.text, offset);
    if (!VARIABLE.test(name))
      throw new RenderError(
        file.path,
        line,
        `unsupported placeholder {{${inner}}}: only image_ref, artifact, environment, project and values.<key> are allowed`,
      );
    values.push(lookup(vars, name, file.path, line));
    return tokenText(values.length - 1);
  });
  if (/\{\{|\}\}/.test(substituted)) {
    const at = substituted.search(/\{\{|\}\}/);
    throw new RenderError(file.path, lineOf(substituted, at), 'unbalanced {{ or }}');
  }
  const token = new RegExp(`__platform_tpl_${nonce}_(\\d+)__`, 'g');
  const whole = new RegExp(`^__platform_tpl_${nonce}_(\\d+)__$`);
  const docs = parseAllDocuments(substituted, { prettyErrors: true, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: RenderedDocument[] = [];
  for (const doc of list) {
    const err = doc.errors[0];
    if (err)
      throw new RenderError(
        file.path,
        err.linePos?.[0]?.line ?? null,
        `invalid YAML: ${err.message.split('\n')[0]}`,
      );
    visit(doc, {
      Alias() {
        throw new RenderError(file.path, null, 'YAML aliases are not allowed in templates');
      },
      Scalar(_key, node) {
        if (typeof node.value !== 'string') return;
        const m = whole.exec(node.value);
        if (m) {
          const v = values[Number(m[1])]!;
          const replacement = new Scalar(v);
          return replacement;
        }
        if (!token.test(node.value)) return;
        token.lastIndex = 0;
        const text = node.value.replace(token, (_t, i: string) => String(values[Number(i)]));
        return new Scalar(text);
      },
    });
    const data = doc.toJS({ maxAliasCount: 0 }) as unknown;
    if (data === null || data === undefined) continue;
    if (typeof data !== 'object' || Array.isArray(data))
      throw new RenderError(file.path, null, 'every YAML document must be a map (a manifest object)');
    out.push({ file: file.path, object: data as JsonObject });
  }
  return out;
}

/** Renders every template; the first error stops (named file and variable). */
export function renderAll(files: TemplateFile[], vars: RenderVariables): RenderedDocument[] {
  return files.flatMap((f) => renderTemplate(f, vars));
}

/** The rendered manifests as one YAML stream (what the diff and the history show). */
export function toYamlStream(docs: RenderedDocument[]): string {
  return docs
    .map((d) => `# ${d.file}\n${stringify(d.object, { lineWidth: 0, blockQuote: false })}`)
    .join('---\n');
}

/** `values.yaml` ← `<environment>.values.yaml` ← `values_override`: maps merge, everything else replaces. */
export function mergeValues(...layers: JsonObject[]): JsonObject {
  const out: JsonObject = {};
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) {
      const prev = out[k];
      out[k] = isPlainObject(prev) && isPlainObject(v) ? mergeValues(prev, v) : (v as JsonValue);
    }
  }
  return out;
}

function isPlainObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Parses a values file: a YAML map (or empty); anchors and aliases refused. */
export function parseValues(file: TemplateFile): JsonObject {
  const docs = parseAllDocuments(file.text, { uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  if (list.length > 1) throw new RenderError(file.path, null, 'a values file holds one YAML document');
  const doc = list[0];
  if (!doc) return {};
  const err = doc.errors[0];
  if (err)
    throw new RenderError(
      file.path,
      err.linePos?.[0]?.line ?? null,
      `invalid YAML: ${err.message.split('\n')[0]}`,
    );
  let alias = false;
  visit(doc, {
    Alias: () => {
      alias = true;
      return visit.BREAK;
    },
  });
  if (alias) throw new RenderError(file.path, null, 'YAML aliases are not allowed in values files');
  const data = doc.toJS({ maxAliasCount: 0 }) as unknown;
  if (data === null || data === undefined) return {};
  if (!isMap(doc.contents) && !isPlainObject(data))
    throw new RenderError(file.path, null, 'values must be a YAML map');
  return data as JsonObject;
}
