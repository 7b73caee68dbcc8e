import type { Actor } from '../core/http.js';

/** A signed-in actor: every issue and comment change has a user behind it. */
export type UserActor = Actor & { id: string };
