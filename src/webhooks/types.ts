import type { WebhookDeliveryStatus, WebhookEvent } from '../store/schema.js';

export type { WebhookDeliveryStatus, WebhookEvent };

/** Delivery tuning; the defaults suit production, tests shrink the delays through `service.options`. */
export interface WebhookOptions {
  /** Attempts of one delivery (the first one included) before a retryable failure is final. */
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Deliveries in flight at once per instance. */
  concurrency: number;
  /** Whole-request deadline of one attempt. */
  timeoutMs: number;
  /** How long a claimed row is reserved for its attempt (a crash mid-send → retried after it). */
  leaseMs: number;
  pollIntervalMs: number;
  /** Hosts/CIDRs that may be reached although internal (config `outbound_allow_list`). */
  outboundAllow: string[];
  maxWebhooksPerProject: number;
}

export const defaultWebhookOptions: WebhookOptions = {
  // Retries after about 10 s, 20 s, 40 s, 80 s and 160 s: a receiver restarting is covered.
  maxAttempts: 6,
  backoffBaseMs: 10_000,
  backoffMaxMs: 10 * 60_000,
  concurrency: 4,
  timeoutMs: 10_000,
  leaseMs: 60_000,
  pollIntervalMs: 1_000,
  outboundAllow: [],
  maxWebhooksPerProject: 20,
};

export interface CreateWebhookInput {
  url: string;
  events: WebhookEvent[];
  secret?: string | null | undefined;
  active?: boolean | undefined;
}

export interface UpdateWebhookInput {
  url?: string | undefined;
  events?: WebhookEvent[] | undefined;
  /** null removes the secret (deliveries go unsigned). */
  secret?: string | null | undefined;
  active?: boolean | undefined;
}
