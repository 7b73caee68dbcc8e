import { isUuid } from '../core/validation.js';
import { type Attributes, stringAttr } from './attributes.js';

/** What a session id fills in (agent_sessions, owned by the agents module: read through this). */
export interface SessionDirectory {
  lookup(sessionId: string): Promise<{ projectId: string; userId: string } | null>;
}

export interface Envelope {
  projectId: string | null;
  sessionId: string | null;
  userId: string | null;
  service: string;
}

/** Why a record's envelope is refused (it becomes a partial-success rejection). */
export type EnvelopeRefusal = string;

/**
 * Resolves the correlation envelope from the merged resource + record attributes: project from
 * `platform.project_id` (else the token's project), session from `platform.session_id` (which fills
 * project and user in from the session), user from the session or `platform.user_id`, service from
 * `service.name`.
 */
export async function resolveEnvelope(
  attrs: Attributes,
  defaults: { projectId: string | null },
  sessions: SessionDirectory,
  cache: Map<string, Promise<{ projectId: string; userId: string } | null>>,
): Promise<Envelope | EnvelopeRefusal> {
  const explicitProject = stringAttr(attrs, 'platform.project_id');
  if (explicitProject !== null && !isUuid(explicitProject)) return 'platform.project_id is not a uuid';
  const sessionId = stringAttr(attrs, 'platform.session_id');
  if (sessionId !== null && !isUuid(sessionId)) return 'platform.session_id is not a uuid';
  let session: { projectId: string; userId: string } | null = null;
  if (sessionId) {
    let pending = cache.get(sessionId);
    if (!pending) {
      pending = sessions.lookup(sessionId);
      cache.set(sessionId, pending);
    }
    session = await pending;
  }
  let projectId = explicitProject ?? session?.projectId ?? defaults.projectId;
  if (session && explicitProject && session.projectId !== explicitProject) {
    return 'platform.session_id belongs to another project than platform.project_id';
  }
  if (session && !explicitProject) projectId = session.projectId;
  const userAttr = stringAttr(attrs, 'platform.user_id');
  const userId = session?.userId ?? (userAttr && isUuid(userAttr) ? userAttr : null);
  return {
    projectId: projectId ?? null,
    sessionId,
    userId,
    service: stringAttr(attrs, 'service.name') ?? '',
  };
}
