export { webhookCategory } from './dispatch.js';
export { createWebhooksModule, WEBHOOK_DELIVERY_LOOP } from './module.js';
export {
  type CreateWebhookInput,
  type DeliveryDetailView,
  type DeliveryView,
  defaultWebhookOptions,
  type UpdateWebhookInput,
  type WebhookOptions,
  WebhooksService,
  type WebhookView,
  webhookSecretsColumn,
} from './service.js';
