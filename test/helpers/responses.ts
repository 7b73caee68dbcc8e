import type { z } from 'zod';
import { answeredAnywhere } from '../../src/core/errors.js';
import type { AnyRouteDef, ObservedReply } from '../../src/core/http.js';
import { errorBodySchema } from '../../src/core/json-schema.js';

/**
 * The contract check the harness runs on every reply it sees (test/helpers/app.ts): a 2xx JSON body
 * against the route's `response` schema, any 4xx/5xx JSON body against the Error schema. A schema
 * that drifts from what the handler answers fails the test that saw it, naming route, status and
 * the zod issues.
 *
 * Strict (the default; PLATFORM_TEST_STRICT_RESPONSES=0 turns it off while a module is being
 * written): a 2xx of a route without a response schema is a failure too, and so is a refusal reason
 * the route does not list.
 */
export const strictResponses = process.env.PLATFORM_TEST_STRICT_RESPONSES !== '0';

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 10)
    .map((i) => `  - ${i.path.length ? i.path.join('.') : '(root)'}: ${i.message} [${i.code}]`)
    .join('\n');
}

/** Routes whose success answer has no schema: neither a response schema, nor 204, nor a raw route's `produces`. */
export function missingSuccessSchema(def: AnyRouteDef): boolean {
  if (def.raw) return !def.produces;
  return !def.response && def.status !== 204;
}

/** What is wrong with one reply, or null. */
export function replyProblem(reply: ObservedReply): string | null {
  const { def, status } = reply;
  const where = `${reply.method} ${def ? def.url : reply.url.split('?')[0]} → ${status}`;
  const isJson = /^application\/([\w.+-]+\+)?json/.test(reply.contentType);
  if (status === 204) {
    const empty = reply.payload === undefined || reply.payload === null || reply.payload === '';
    return empty ? null : `${where}: a 204 reply has a body`;
  }
  if (typeof reply.payload !== 'string' || !isJson) {
    if (status >= 400 && typeof reply.payload === 'string' && reply.payload.length > 0 && !def?.raw)
      return `${where}: an error reply is not JSON (content-type ${reply.contentType || 'none'})`;
    return null;
  }
  let body: unknown;
  try {
    body = JSON.parse(reply.payload);
  } catch {
    return `${where}: the JSON body does not parse`;
  }
  if (status >= 400) {
    const result = errorBodySchema.safeParse(body);
    if (!result.success)
      return `${where}: the error body does not match the Error schema:\n${describeIssues(result.error)}`;
    const reason = result.data.error.reason;
    if (
      strictResponses &&
      def &&
      reason &&
      !(def.reasons ?? []).includes(reason) &&
      !answeredAnywhere(reason)
    )
      return `${where}: reason ${reason} is not listed in the route's reasons`;
    return null;
  }
  if (status < 200 || status >= 300 || !def) return null;
  if (!def.response) {
    if (strictResponses && !def.raw) return `${where}: the route has no response schema`;
    return null;
  }
  const result = def.response.safeParse(body);
  if (!result.success)
    return `${where}: the body does not match the route's response schema:\n${describeIssues(result.error)}`;
  return null;
}
