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
