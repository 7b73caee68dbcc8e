import { z } from 'zod';
import type { AnyRouteDef } from '../core/http.js';
import { type JsonSchema, toJsonSchema } from '../core/json-schema.js';
import type { Permission } from '../core/permissions.js';
import type { Budget, ToolSpec, Toolset } from './tools.js';

/** Where each tool input goes in the route's request. */
type Slot = 'path' | 'query' | 'body';

/** A tool as derived from its route: the JSON Schema it shows and how its inputs map to the request. */
export interface CatalogTool {
  name: string;
  toolset: Toolset;
  description: string;
  /** GET tools read; every other method writes. */
  write: boolean;
  /** The permission the route checks (null: any signed-in caller, or decided by the handler). */
  permission: Permission | null;
  method: string;
  url: string;
  slots: ReadonlyMap<string, Slot>;
  fixed: Record<string, unknown>;
  budget: Budget | undefined;
  prepare: (ToolSpec['prepare'] & { url: string }) | undefined;
  inputSchema: JsonSchema & { type: 'object' };
  /** Whether the route takes a JSON body (sent even when every field is left out). */
  hasBody: boolean;
}

/** How many items a list tool asks for unless told: small, so one answer fits the budget. */
export const LIST_DEFAULT_LIMIT = 20;
export const LIST_MAX_LIMIT = 50;

const PROJECT_PREFIX = '/api/projects/:id';

/** `id` of `/api/projects/:id/…` is shown as `project`: an agent knows `owner/name`, rarely the id. */
const projectInput: JsonSchema = { type: 'string', description: 'owner/name or project id' };

function objectParts(
  schema: z.ZodType | undefined,
  where: string,
): { properties: Record<string, JsonSchema>; required: string[] } {
  if (!schema) return { properties: {}, required: [] };
  // An optional body (merge: every field optional) is still an object of fields.
  if (schema instanceof z.ZodOptional) return objectParts(schema.unwrap() as z.ZodType, where);
  if (!(schema instanceof z.ZodObject)) throw new Error(`${where}: an MCP tool needs an object schema`);
  const json = toJsonSchema(schema, 'input') as {
    properties?: Record<string, JsonSchema>;
    required?: string[];
  };
  return { properties: json.properties ?? {}, required: json.required ?? [] };
}

function permissionOf(def: AnyRouteDef): Permission | null {
  if (typeof def.access !== 'object') return null;
  if ('permission' in def.access) return def.access.permission;
  return def.access.self === 'account' ? null : def.access.self;
}

/** One tool from its spec and route; throws when the two do not fit (a test builds every tool). */
export function deriveTool(spec: ToolSpec, def: AnyRouteDef, prepareDef?: AnyRouteDef): CatalogTool {
  const where = `tool ${spec.name} (${spec.route})`;
  const slots = new Map<string, Slot>();
  const properties: Record<string, JsonSchema> = {};
  const required = new Set<string>();
  const fixed = spec.fixed ?? {};
  const add = (slot: Slot, part: ReturnType<typeof objectParts>) => {
    for (const [key, prop] of Object.entries(part.properties)) {
      const isProject = slot === 'path' && key === 'id' && def.url.startsWith(PROJECT_PREFIX);
      const name = isProject ? 'project' : key;
      if (slots.has(name)) throw new Error(`${where}: input ${name} is both ${slots.get(name)} and ${slot}`);
      slots.set(name, slot);
      if (name in fixed) continue;
      properties[name] = isProject ? projectInput : prop;
      if (part.required.includes(key)) required.add(name);
    }
  };
  add('path', objectParts(def.params, where));
  add('query', objectParts(def.query, where));
  add('body', objectParts(def.body, where));
  if (spec.budget?.kind === 'list') {
    if (slots.get('limit') !== 'query' || slots.get('cursor') !== 'query')
      throw new Error(`${where}: a list tool's route takes limit and cursor`);
    properties.limit = { type: 'integer', minimum: 1, maximum: LIST_MAX_LIMIT, default: LIST_DEFAULT_LIMIT };
    properties.cursor = { type: 'string', description: 'next_cursor of the previous answer' };
  }
  if (spec.budget?.kind === 'cut') {
    properties[`${spec.budget.field}_offset`] = {
      type: 'integer',
      minimum: 0,
      description: `read ${spec.budget.field} from this character (when cut)`,
    };
  }
  if (spec.budget?.kind === 'log') {
    properties.offset = {
      type: 'integer',
      minimum: 0,
      description: 'byte offset to read from; default: the tail',
    };
  }
  let prepare: CatalogTool['prepare'];
  if (spec.prepare) {
    if (!prepareDef) throw new Error(`${where}: the route it reads first is not registered`);
    // The inputs the compare route gets from the merge request are not the caller's to give.
    const mapped = Object.keys(spec.prepare.map({}));
    for (const key of mapped) {
      delete properties[key];
      required.delete(key);
    }
    for (const key of spec.prepare.args) {
      const part = objectParts(prepareDef.params, where).properties[key];
      if (!part) throw new Error(`${where}: ${key} is not a parameter of ${spec.prepare.route}`);
      properties[key] = part;
      required.add(key);
    }
    prepare = { ...spec.prepare, url: prepareDef.url };
  }
  return {
    name: spec.name,
    toolset: spec.toolset,
    description: spec.description,
    write: def.method !== 'GET' && def.method !== 'HEAD',
    permission: permissionOf(def),
    method: def.method,
    url: def.url,
    slots,
    fixed,
    budget: spec.budget,
    prepare,
    inputSchema: { type: 'object', properties, ...(required.size ? { required: [...required] } : {}) },
    hasBody: Boolean(def.body),
  };
}

/** Every tool whose route is registered; a required tool without its route is a programming error. */
export function buildCatalog(routes: readonly AnyRouteDef[], specs: readonly ToolSpec[]): CatalogTool[] {
  const byKey = new Map(routes.map((r) => [`${r.method} ${r.url}`, r]));
  const out: CatalogTool[] = [];
  for (const spec of specs) {
    const def = byKey.get(spec.route);
    if (!def) {
      if (spec.optional) continue;
      throw new Error(`tool ${spec.name}: no route ${spec.route}`);
    }
    out.push(deriveTool(spec, def, spec.prepare ? byKey.get(spec.prepare.route) : undefined));
  }
  return out;
}

/** What the caller may see: the toolsets asked for, without write tools when read-only. */
export interface ToolSelection {
  toolsets: ReadonlySet<Toolset>;
  readOnly: boolean;
  /** A scoped token's scopes: a write tool needing a permission outside them is not shown. */
  scopes: readonly string[] | null;
}

export function selectTools(catalog: readonly CatalogTool[], selection: ToolSelection): CatalogTool[] {
  return catalog.filter((tool) => {
    if (!selection.toolsets.has(tool.toolset)) return false;
    if (!tool.write) return true;
    if (selection.readOnly) return false;
    return !selection.scopes || !tool.permission || selection.scopes.includes(tool.permission);
  });
}

/** A token whose scopes hold no write permission makes every write tool disappear. */
export function isReadOnlyScopes(scopes: readonly string[] | null): boolean {
  return scopes?.every((s) => s.endsWith(':read')) ?? false;
}
