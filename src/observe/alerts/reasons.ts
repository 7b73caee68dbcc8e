import { declareReasons } from '../../core/errors.js';

/** Why the alert routes refuse (a bad query: `observe.invalid_query`, query-lang/reasons.ts). */
export const ALERT_REASONS = declareReasons('observe', {
  recipientUnknown: ['observe.alert_recipient_unknown', 'a recipient does not exist or is deactivated (422)'],
  silenceInPast: ['observe.silence_in_past', 'a silence must end in the future (422)'],
});
