export { DeliveryError, Mailer, safeSubject, validAddress } from './email.js';
export { createNotifyModule, NOTIFY_DELIVERY_LOOP } from './module.js';
export {
  type ListFilter,
  NotifyService,
  notificationView,
  notificationWebhookSecretsColumn,
} from './service.js';
export {
  defaultNotifyOptions,
  emailedByDefault,
  type NotificationView,
  type NotificationWebhookView,
  type NotifyInput,
  type NotifyOptions,
  type PreferenceView,
  userChannel,
} from './types.js';
