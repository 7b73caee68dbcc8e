export interface PushReceivedEvent {
  projectId: string;
  /** Full ref name, e.g. refs/heads/main. */
  ref: string;
  before: string;
  after: string;
  created: boolean;
  deleted: boolean;
  pusherId: string;
  pusherName: string;
  /** Newest first, at most 100. */
  commits: { sha: string; author: string; email: string; date: string; message: string }[];
}

declare module '../core/events.js' {
  interface DomainEvents {
    'push.received': PushReceivedEvent;
  }
}
