import type { EventBus } from '../core/events.js';

/** A deployment's status changed; emitted after the commit that changed it. */
export interface DeploymentChangedEvent {
  projectId: string;
  deploymentId: string;
  environment: string;
  status: string;
  deployedBy: string | null;
  ownerId: string;
}

declare module '../core/events.js' {
  interface DomainEvents {
    'deployment.changed': DeploymentChangedEvent;
  }
}

/** The one emitter of `deployment.changed` (the reconciler, and the publish hand-off below). */
export function emitDeploymentChanged(bus: EventBus, e: DeploymentChangedEvent): void {
  bus.emit('deployment.changed', e);
}

/**
 * After the transaction that recorded a publication (`recordPublication`) has committed: tells the
 * reconciler and the subscribers (notifications, webhooks) that the environment should change.
 */
export function announcePublication(
  bus: EventBus,
  d: {
    id: string;
    project_id: string;
    environment: string;
    current_status: string;
    deployed_by: string | null;
  },
  ownerId: string,
): void {
  emitDeploymentChanged(bus, {
    projectId: d.project_id,
    deploymentId: d.id,
    environment: d.environment,
    status: d.current_status,
    deployedBy: d.deployed_by,
    ownerId,
  });
}
