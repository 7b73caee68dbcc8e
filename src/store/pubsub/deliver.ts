import type { PubSubHandler } from './types.js';

export type HandlerErrorReporter = (error: unknown, channel: string) => void;

/** Default: a process warning — a failing subscriber must not crash the process or starve others. */
export const warnOnHandlerError: HandlerErrorReporter = (error, channel) => {
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.emitWarning(`pub/sub handler for channel ${channel} failed: ${detail}`, 'PubSubHandlerWarning');
};

/** Calls a handler, routing a throw or a rejected promise (async handlers) to the reporter. */
export function invokeHandler(
  handler: PubSubHandler,
  message: unknown,
  channel: string,
  report: HandlerErrorReporter,
): void {
  try {
    const result: unknown = handler(message);
    if (result instanceof Promise) result.catch((err: unknown) => report(err, channel));
  } catch (err) {
    report(err, channel);
  }
}
