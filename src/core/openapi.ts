import { answeredAnywhere, declaredReasons } from './errors.js';
import { type AnyRouteDef, successStatus } from './http.js';
import { errorBodySchema, type JsonSchema, liftNamed, toJsonSchema } from './json-schema.js';

const COMPONENT = '#/components/schemas/';

export interface OpenApiInfo {
  title: string;
  version: string;
  serverUrl: string;
  /** The `/api/projects/:owner/:name/…` alias of a route, if it has one (RouteRegistry.aliasOf). */
  aliasOf?: (def: AnyRouteDef) => string | null;
}

/** `/api/projects/:id/x` → `/api/projects/{id}/x`; a wildcard (`/api/objects/*`) becomes `{key}`. */
function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\*$/, '{key}');
}

function operationId(method: string, path: string): string {
  return `${method.toLowerCase()}${path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`;
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  204: 'No Content',
  302: 'Found (redirect to the content)',
};

/**
 * The OpenAPI 3.1 document of every registered route. Request schemas are converted on the input
 * side, response schemas on the output side; schemas named with `.meta({ id })` are
 * `components.schemas` entries referred to by `$ref`. Each operation answers its success status
 * (201 for creates, 204 for a route without a response body, a raw route's `produces`) and the
 * Error body for 4XX/5XX, whose description and `x-reasons` list the stable reasons it may carry.
 */
export function openApiDocument(routes: AnyRouteDef[], info: OpenApiInfo): Record<string, unknown> {
  const components: Record<string, JsonSchema> = {};
  const errorRef = { $ref: liftNamed(toJsonSchema(errorBodySchema, 'output'), components, COMPONENT).$ref };
  const schemaOf = (s: Parameters<typeof toJsonSchema>[0], io: 'input' | 'output') =>
    liftNamed(toJsonSchema(s, io), components, COMPONENT, io === 'input' ? 'Input' : undefined);

  // Responses first: a named schema's output form takes its name, an input form that differs gets `…Input`.
  for (const def of routes) if (def.response) schemaOf(def.response, 'output');

  const paths: Record<string, Record<string, unknown>> = {};
  const aliased = new Set<string>();
  for (const def of routes) {
    const path = openApiPath(def.url);
    const parameters: unknown[] = [];
    if (def.url.endsWith('*')) {
      parameters.push({
        name: 'key',
        in: 'path',
        required: true,
        description: 'the object key (may contain "/")',
        schema: { type: 'string' },
      });
    }
    for (const [where, schema] of [
      ['path', def.params],
      ['query', def.query],
    ] as const) {
      if (!schema) continue;
      const json = schemaOf(schema, 'input') as {
        properties?: Record<string, JsonSchema>;
        required?: string[];
      };
      for (const [name, prop] of Object.entries(json.properties ?? {})) {
        if (name === '*') continue;
        const { description, ...propSchema } = prop;
        parameters.push({
          name,
          in: where,
          required: where === 'path' || Boolean(json.required?.includes(name)),
          ...(typeof description === 'string' ? { description } : {}),
          schema: propSchema,
        });
      }
    }

    const responses: Record<string, unknown> = {};
    if (def.raw) {
      const status = def.produces?.status ?? 200;
      const contentType = def.produces?.contentType;
      responses[String(status)] = {
        description: def.produces?.description ?? STATUS_TEXT[status] ?? 'success',
        ...(status === 302
          ? { headers: { location: { description: 'where the content is', schema: { type: 'string' } } } }
          : {}),
        ...(contentType && status !== 302 && status !== 204
          ? {
              content: {
                [contentType]: {
                  schema: def.response
                    ? schemaOf(def.response, 'output')
                    : { type: 'string', format: 'binary' },
                },
              },
            }
          : {}),
      };
    } else if (def.response) {
      const status = successStatus(def);
      responses[String(status)] = {
        description: STATUS_TEXT[status] ?? 'success',
        content: { 'application/json': { schema: schemaOf(def.response, 'output') } },
      };
    } else {
      // No response body: the handler returns nothing and the registry answers 204.
      responses[String(def.status && def.status !== 200 ? def.status : 204)] = { description: 'No Content' };
    }
    const reasons = def.reasons ?? [];
    const reasonText = reasons.length
      ? `; \`error.reason\` may be: ${reasons.map((r) => `\`${r}\`${declaredReasons.get(r) ? ` (${declaredReasons.get(r)?.description})` : ''}`).join(', ')}`
      : '';
    responses['4XX'] = {
      description: `client error (the Error body)${reasonText}`,
      content: { 'application/json': { schema: errorRef } },
    };
    responses['5XX'] = {
      description: 'server error or a dependency unavailable (the Error body)',
      content: { 'application/json': { schema: errorRef } },
    };

    const alias = info.aliasOf?.(def);
    const operation: Record<string, unknown> = {
      summary: def.summary,
      ...(alias
        ? {
            description: `Also answers under \`${openApiPath(alias)}\` (owner and project name instead of the id).`,
          }
        : {}),
      tags: def.tags,
      operationId: operationId(def.method, path),
      'x-access': def.access,
      ...(reasons.length ? { 'x-reasons': reasons } : {}),
      security: def.access === 'public' ? [] : [{ bearer: [] }, { session: [] }],
      parameters,
      responses,
    };
    if (def.body) {
      operation.requestBody = {
        required: true,
        content: { 'application/json': { schema: schemaOf(def.body, 'input') } },
      };
    }
    if (alias) aliased.add(def.tags[0] ?? '');
    paths[path] ??= {};
    paths[path][def.method.toLowerCase()] = operation;
  }

  const tagNames = [...new Set(routes.flatMap((r) => r.tags))].sort();
  return {
    openapi: '3.1.0',
    info: {
      title: info.title,
      version: info.version,
      description:
        'Every `/api/projects/{id}/…` operation also answers under `/api/projects/{owner}/{name}/…` (the ' +
        "project's owner and name, case-insensitive, following renames); the alias runs the same access " +
        'check and handler, so it is listed once, on the id form. Unknown query parameters are refused ' +
        'with 400. Refusals carry the Error body; `error.reason` is a stable machine reason where a ' +
        'domain rule refused the request. Besides the reasons an operation lists, any operation may ' +
        `answer the identity reasons: ${[...declaredReasons.keys()]
          .filter(answeredAnywhere)
          .sort()
          .map((r) => `\`${r}\``)
          .join(', ')}.`,
      license: { name: 'UNLICENSED', identifier: 'UNLICENSED' },
    },
    servers: [{ url: info.serverUrl }],
    tags: tagNames.map((name) => ({
      name,
      description: aliased.has(name)
        ? `${name} (project-scoped operations also answer under /api/projects/{owner}/{name}/…)`
        : name,
    })),
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'API token (plat_api_…)' },
        session: { type: 'apiKey', in: 'cookie', name: 'platform_session' },
      },
      schemas: Object.fromEntries(Object.entries(components).sort(([a], [b]) => a.localeCompare(b))),
    },
  };
}
