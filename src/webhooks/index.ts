export { webhookCategory } from './dispatch.js';
export { createWebhooksModule, WEBHOOK_DELIVERY_LOOP } from './module.js';
export { webhookSecretsColumn } from './queries.js';
export type { DeliveryDetailView, DeliveryView, WebhookView } from './schemas.js';
export { WebhooksService } from './service.js';
export {
  type CreateWebhookInput,
  defaultWebhookOptions,
  type UpdateWebhookInput,
  type WebhookOptions,
} from './types.js';
