import type { NotificationChannel, NotificationStatus } from '../store/schema.js';

export type { NotificationChannel, NotificationStatus };

/** What a module passes to `notify()`: one event for a set of users. */
export interface NotifyInput {
  /** Recipients; null/undefined and duplicates are ignored. */
  userIds: readonly (string | null | undefined)[];
  /** Event type, e.g. `pipeline.failed`, `mr.opened`, `alert.fired`. */
  type: string;
  subject: string;
  body?: string;
  refType?: string | null;
  refId?: string | null;
  projectId?: string | null;
}

/** Tuning of delivery; the defaults suit production, tests shrink the delays. */
export interface NotifyOptions {
  /** Delivery attempts before a transiently failing notification becomes `failed`. */
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** How long a claimed row is reserved for one delivery attempt (a crash → retried after it). */
  leaseMs: number;
  batchSize: number;
  /** Deliveries in flight at once per instance. */
  concurrency: number;
  pollIntervalMs: number;
  /** E-mails per user per hour before further ones are folded into one digest. */
  emailHourlyLimit: number;
  /** A digest waits this long for more events before it is sent. */
  digestDelayMs: number;
  /** Lines of subjects listed in a digest. */
  digestMaxLines: number;
  smtpTimeoutMs: number;
  /** SSE comment every so often so proxies keep the stream open. */
  heartbeatMs: number;
  /** Hosts/CIDRs the webhook channel may reach although internal (on-premises targets, tests). */
  outboundAllow: string[];
  outboundTimeoutMs: number;
  /** Active user-level webhooks per user. */
  maxWebhooksPerUser: number;
}

export const defaultNotifyOptions: NotifyOptions = {
  maxAttempts: 6,
  backoffBaseMs: 5_000,
  backoffMaxMs: 15 * 60_000,
  leaseMs: 60_000,
  batchSize: 50,
  concurrency: 8,
  pollIntervalMs: 1_000,
  emailHourlyLimit: 20,
  digestDelayMs: 5 * 60_000,
  digestMaxLines: 25,
  smtpTimeoutMs: 10_000,
  heartbeatMs: 15_000,
  outboundAllow: [],
  outboundTimeoutMs: 10_000,
  maxWebhooksPerUser: 10,
};

/** The pub/sub channel of a user's in-app notifications (every instance's SSE streams listen). */
export const userChannel = (userId: string) => `notify:user:${userId}`;

/** Event types that are e-mailed by default: failures and alerts. */
export function emailedByDefault(type: string): boolean {
  return /(^|[._])(fail|failed|failure|error|alert)([._]|$)/.test(type) || type.startsWith('alert.');
}
