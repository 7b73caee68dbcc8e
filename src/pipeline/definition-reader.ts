/**
 * Reading a `.platform.yaml` tree with line numbers: every problem becomes a DefinitionError that
 * names the entry's path and line, and an unknown key gets a did-you-mean.
 */
import { type Document, isAlias, isMap, isNode, isScalar, isSeq, type LineCounter, type Node } from 'yaml';
import { closest } from '../core/suggest.js';
import { DefinitionError } from './definition-error.js';

/** One entry of the definition: where it is, and its value (null when absent or empty). */
export interface Field {
  path: string;
  value: Node | null;
  line: number | null;
  present: boolean;
}

export function describe(node: Node | null): string {
  if (node === null) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    if (node.value === null) return 'nothing';
    return `a ${typeof node.value === 'string' ? 'string' : typeof node.value}`;
  }
  return 'a value';
}

export const child = (path: string, key: string) => (path ? `${path}.${key}` : key);

export class Reader {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  /** Aliases (`*name`) read as the node they point to. */
  deref(raw: unknown): Node | null {
    const node = isAlias(raw) ? (raw.resolve(this.doc) ?? null) : isNode(raw) ? raw : null;
    if (node === null || (isScalar(node) && node.value === null)) return null;
    return node;
  }

  lineOf(node: unknown): number | null {
    const range = isNode(node) ? node.range : undefined;
    return range ? this.lines.linePos(range[0]).line : null;
  }

  fail(field: { path: string; line: number | null }, detail: string): never {
    throw new DefinitionError(field.path, detail, field.line);
  }

  root(node: Node, path: string): Field {
    return { path, value: node, line: this.lineOf(node), present: true };
  }

  /** The entries of a mapping, in source order; keys must be scalars. */
  entries(field: Field): { name: string; keyLine: number | null; field: Field }[] {
    const map = field.value;
    if (!isMap(map)) this.fail(field, 'expected a mapping');
    return map.items.map((pair) => {
      const key = isAlias(pair.key) ? pair.key.resolve(this.doc) : pair.key;
      if (!isScalar(key) || key.value === null || typeof key.value === 'object') {
        this.fail({ path: field.path, line: this.lineOf(pair.key) ?? field.line }, 'keys must be strings');
      }
      const name = String(key.value);
      const value = this.deref(pair.value);
      const keyLine = this.lineOf(key) ?? field.line;
      const line = this.lineOf(value) ?? keyLine;
      return { name, keyLine, field: { path: child(field.path, name), value, line, present: true } };
    });
  }

  /** A mapping with a fixed set of keys; absent keys come back with `present: false`. */
  fields<K extends string>(
    field: Field,
    allowed: readonly K[],
    suggest: readonly string[] = allowed,
  ): Record<K, Field> {
    const out = {} as Record<K, Field>;
    for (const name of allowed)
      out[name] = { path: child(field.path, name), value: null, line: field.line, present: false };
    for (const entry of this.entries(field)) {
      if (!(allowed as readonly string[]).includes(entry.name)) {
        const suggestion = closest(entry.name, suggest);
        this.fail(
          { path: entry.field.path, line: entry.keyLine },
          suggestion
            ? `unknown key (did you mean "${suggestion}"?)`
            : `unknown key (expected one of: ${allowed.join(', ')})`,
        );
      }
      out[entry.name as K] = entry.field;
    }
    return out;
  }

  list(field: Field, what: string): Field[] {
    const seq = field.value;
    if (!isSeq(seq)) this.fail(field, `expected ${what}`);
    return seq.items.map((item, i) => {
      const value = this.deref(item);
      return {
        path: `${field.path}[${i}]`,
        value,
        line: this.lineOf(value) ?? this.lineOf(item) ?? field.line,
        present: true,
      };
    });
  }

  string(field: Field, what = 'a string'): string {
    const node = field.value;
    if (!isScalar(node) || typeof node.value !== 'string') this.fail(field, `expected ${what}`);
    if (node.value.trim() === '') this.fail(field, 'must not be empty');
    return node.value;
  }

  optionalString(field: Field): string | null {
    return field.value === null ? null : this.string(field);
  }

  boolean(field: Field, fallback: boolean): boolean {
    if (field.value === null) return fallback;
    const node = field.value;
    if (!isScalar(node) || typeof node.value !== 'boolean') this.fail(field, 'expected true or false');
    return node.value;
  }

  /** `main` or `[main, "release/*"]`; never empty. */
  stringOrList(field: Field): string[] {
    if (isScalar(field.value)) return [this.string(field, 'a string or a list of strings')];
    const items = this.list(field, 'a string or a list of strings');
    if (items.length === 0) this.fail(field, 'must not be empty');
    return items.map((item) => this.string(item));
  }

  requireValue(field: Field): void {
    if (!field.present) this.fail(field, 'required');
  }
}

// ---------------------------------------------------------------------------------------------
// The definition
