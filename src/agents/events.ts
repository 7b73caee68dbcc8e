// The agents module comes later; its events are declared here so subscribers (notify) can rely on them.

/** An agent session ended; emitted after the commit that ended it. */
export interface SessionFinishedEvent {
  projectId: string | null;
  sessionId: string;
  status: string;
  requestedBy: string;
}

declare module '../core/events.js' {
  interface DomainEvents {
    'session.finished': SessionFinishedEvent;
  }
}
