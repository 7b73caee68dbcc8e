export { DeliveryError, Mailer, safeSubject, validAddress } from './email.js';
export { createNotifyModule, NOTIFY_DELIVERY_LOOP } from './module.js';
export { type ListFilter, notificationView } from './queries.js';
export type { NotificationView, NotificationWebhookView, PreferenceView } from './schemas.js';
export { NotifyService } from './service.js';
export {
  defaultNotifyOptions,
  emailedByDefault,
  type NotifyInput,
  type NotifyOptions,
  userChannel,
} from './types.js';
export { notificationWebhookSecretsColumn } from './user-webhooks.js';
