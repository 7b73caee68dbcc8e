import type { Logger } from 'pino';

/**
 * The typed domain events. Each module adds its own with declaration merging:
 *   declare module '../core/events.js' { interface DomainEvents { 'push.received': PushEvent } }
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled in by declaration merging in every module.
export interface DomainEvents {}

export type EventName = keyof DomainEvents;
type Handler<K extends EventName> = (payload: DomainEvents[K]) => void | Promise<void>;
type AnyHandler = <K extends EventName>(name: K, payload: DomainEvents[K]) => void | Promise<void>;

/**
 * The in-process event bus. Emit after the transaction that made the change has committed;
 * handlers run asynchronously, one failing handler is logged and does not affect the others.
 */
export class EventBus {
  private readonly handlers = new Map<string, Set<Handler<EventName>>>();
  private readonly anyHandlers = new Set<AnyHandler>();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly log?: Logger) {}

  on<K extends EventName>(name: K, handler: Handler<K>): () => void {
    let set = this.handlers.get(name);
    if (!set) {
      set = new Set();
      this.handlers.set(name, set);
    }
    set.add(handler as Handler<EventName>);
    return () => set.delete(handler as Handler<EventName>);
  }

  /** Every event, with its name (the project webhook dispatcher maps names to webhook categories). */
  onAny(handler: AnyHandler): () => void {
    this.anyHandlers.add(handler);
    return () => this.anyHandlers.delete(handler);
  }

  emit<K extends EventName>(name: K, payload: DomainEvents[K]): void {
    const handlers: ((p: DomainEvents[K]) => void | Promise<void>)[] = [...(this.handlers.get(name) ?? [])];
    for (const any of this.anyHandlers) handlers.push((p) => any(name, p));
    for (const handler of handlers) {
      const run = (async () => {
        try {
          await handler(payload);
        } catch (err) {
          this.log?.error({ err, event: name }, 'domain event handler failed');
        }
      })();
      this.inFlight.add(run);
      void run.finally(() => this.inFlight.delete(run));
    }
  }

  /** Waits for the handlers started so far (graceful shutdown, tests). */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }
}
