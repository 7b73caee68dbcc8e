import { declareReasons } from '../core/errors.js';

export const WEBHOOK_REASONS = declareReasons('webhook', {
  nonPublicAddress: [
    'webhook.non_public_address',
    'the URL resolves to a loopback, private, link-local or metadata address; ' +
      'PLATFORM_OUTBOUND_ALLOW_LIST names the hosts or CIDRs that may be reached although internal',
  ],
  invalidUrl: ['webhook.invalid_url', 'the URL is not http(s), or carries credentials'],
  limitReached: ['webhook.limit_reached', 'the project has the maximum number of webhooks'],
  ownerOnly: ['webhook.owner_only', 'only the project owner or an admin may manage its webhooks'],
});

/** The setting that lets a webhook reach an internal receiver, named in the refusal's message. */
export const ALLOW_LIST_HINT =
  'to allow a local or internal receiver, add its host or CIDR to PLATFORM_OUTBOUND_ALLOW_LIST';
