import { z } from 'zod';

/**
 * zod → JSON Schema for the two readers of the route schemas: the OpenAPI document and Fastify's
 * compiled serializer (fast-json-stringify). Schemas named with `.meta({ id })` come out of zod in
 * `$defs` under their id; `liftNamed` moves them to a shared table (the OpenAPI components) so
 * every operation refers to one definition.
 */
export type JsonSchema = Record<string, unknown>;

/** The error body every non-2xx JSON answer has (`AppError.toBody()`). */
export const errorBodySchema = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'HTTP-level class: bad_request, not_found, conflict…' }),
      reason: z
        .string()
        .optional()
        .meta({ description: 'stable machine reason of a domain refusal (see the operation’s x-reasons)' }),
      message: z.string(),
      details: z.array(z.looseObject({ path: z.string().optional(), message: z.string() })),
    }),
  })
  .meta({ id: 'Error', description: 'The error body of every refusal' });

/** One schema as JSON Schema: `$defs` kept (named schemas), no `$schema` keyword. */
export function toJsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dropped, ...rest } = z.toJSONSchema(schema, {
    io,
    unrepresentable: 'any',
    target: 'draft-2020-12',
  }) as JsonSchema;
  return rest;
}

/**
 * Moves the `$defs` of `schema` into `into` (keyed by id) and rewrites `#/$defs/<id>` references
 * to `<prefix><id>`. A named schema can read differently as input (defaults make fields optional):
 * with `altSuffix`, a schema whose definitions differ from those already lifted is lifted under
 * `<id><altSuffix>` instead. Any other clash is two modules naming different schemas alike: it throws.
 */
export function liftNamed(
  schema: JsonSchema,
  into: Record<string, JsonSchema>,
  prefix: string,
  altSuffix?: string,
): JsonSchema {
  const { $defs = {}, ...root } = schema as JsonSchema & { $defs?: Record<string, JsonSchema> };
  const lift = (suffix: string) => {
    const rewrite = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(rewrite);
      if (value && typeof value === 'object') {
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(value)) {
          out[k] =
            k === '$ref' && typeof v === 'string' && v.startsWith('#/$defs/')
              ? `${prefix}${v.slice('#/$defs/'.length)}${suffix}`
              : rewrite(v);
        }
        return out;
      }
      return value;
    };
    const defs = Object.entries($defs).map(
      ([id, def]) => [`${id}${suffix}`, rewrite(def) as JsonSchema] as const,
    );
    const clash = defs.find(([id, def]) => into[id] && JSON.stringify(into[id]) !== JSON.stringify(def));
    return { defs, root: rewrite(root) as JsonSchema, clash: clash?.[0] };
  };
  let lifted = lift('');
  if (lifted.clash && altSuffix) lifted = lift(altSuffix);
  if (lifted.clash)
    throw new Error(`two different schemas are named ${lifted.clash} (.meta({ id }) must be unique)`);
  for (const [id, def] of lifted.defs) into[id] = def;
  return lifted.root;
}

/**
 * The schema fast-json-stringify compiles: self-contained (its `$defs` stay inside, which it
 * resolves), without the validation-only keywords it ignores anyway.
 */
export function serializerSchema(schema: z.ZodType): JsonSchema {
  return toJsonSchema(schema, 'output');
}
