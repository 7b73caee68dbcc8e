import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Drivers } from '../store/index.js';
import type { EventBus } from './events.js';
import type { AnyRouteDef } from './http.js';
import type { Metrics } from './metrics.js';
import type { Scheduler } from './scheduler.js';

/**
 * What every module gets to build itself: the shared drivers and process-wide services. Other
 * modules' services (identity included) are not here: a module names them as typed parameters of
 * its `create<Name>Module(ctx, deps)`, so the dependency graph is visible in the signatures and
 * `app.ts` composes them in order.
 */
export interface ModuleContext {
  config: Config;
  drivers: Drivers;
  log: Logger;
  events: EventBus;
  scheduler: Scheduler;
  metrics: Metrics;
  /** The platform master key (secrets, webhook and notification signing secrets at rest). */
  masterKey: Buffer;
}

/** A built module: its routes, lifecycle hooks and the public service other modules may use. */
export interface PlatformModule<S = unknown> {
  name: string;
  routes: AnyRouteDef[];
  /** The module's public service (what its index.ts exports for other modules). */
  service: S;
  /** Subscriptions and scheduler loops; runs once, after every module is built. */
  start?(): Promise<void>;
  /** Stops what start() began; modules stop in reverse order. */
  stop?(): Promise<void>;
  /** Waits for background work that requests started (e.g. post-push processing). */
  settle?(): Promise<void>;
}
