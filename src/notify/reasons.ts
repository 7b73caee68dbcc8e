import { declareReasons } from '../core/errors.js';

export const NOTIFY_REASONS = declareReasons('notify', {
  notInApp: ['notify.not_in_app', 'only in-app notifications can be marked read'],
  notReadable: ['notify.not_readable', 'the notification is already read or failed'],
  duplicatePreference: ['notify.duplicate_preference', 'an event type is listed twice in the preferences'],
  webhookLimit: ['notify.webhook_limit', 'the user has the maximum number of notification webhooks'],
  webhookUrlRefused: [
    'notify.webhook_url_refused',
    'the webhook URL is refused by the outbound guard (non-public address, scheme, credentials); ' +
      'PLATFORM_OUTBOUND_ALLOW_LIST names hosts or CIDRs that may be reached although internal',
  ],
});
