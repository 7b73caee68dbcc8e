// The observe module comes later; its events are declared here so subscribers (notify) can rely on them.

/** An alert rule started or stopped firing; emitted after the commit that recorded it. */
export interface AlertEvent {
  projectId: string | null;
  ruleId: string;
  alertEventId: string;
  ruleName: string;
  message: string;
  /** The rule's recipients and the project owner. */
  recipientIds: string[];
}

declare module '../core/events.js' {
  interface DomainEvents {
    'alert.fired': AlertEvent;
    'alert.resolved': AlertEvent;
  }
}
