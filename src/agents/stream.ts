import type { Db } from '../store/db.js';
import type { PubSub } from '../store/pubsub/types.js';
import { messagesAfter } from './queries.js';
import { type StreamedMessage, sessionChannel, streamedMessage } from './run.js';

/**
 * A session's events for one watcher, in sequence order without gaps or repeats: subscribe first,
 * replay what is stored after `after`, then the live ones (a live event already replayed is
 * dropped; one that overtook the replay is held until the replay reaches it).
 */
export async function followSession(
  deps: { db: Db; pubsub: PubSub },
  sessionId: string,
  after: number,
  send: (m: StreamedMessage) => void,
): Promise<() => Promise<void>> {
  let last = after;
  let replaying = true;
  const held: StreamedMessage[] = [];
  const deliver = (m: StreamedMessage) => {
    if (m.seq <= last) return;
    last = m.seq;
    send(m);
  };
  const catchUp = async () => {
    for (;;) {
      const rows = await messagesAfter(deps.db, sessionId, last, 500);
      for (const r of rows) deliver(streamedMessage(r));
      if (rows.length < 500) return;
    }
  };
  const unsubscribe = await deps.pubsub.subscribe(sessionChannel(sessionId), (raw) => {
    for (const m of Array.isArray(raw) ? (raw as Array<StreamedMessage & { stub?: true }>) : []) {
      if (typeof m?.seq !== 'number') continue;
      if (m.stub) {
        // Too large for pub/sub: read it (and anything before it) from the store.
        if (!replaying) void catchUp();
        continue;
      }
      if (replaying) {
        held.push(m);
        continue;
      }
      if (m.seq === last + 1) deliver(m);
      else if (m.seq > last + 1) {
        // A gap (a batch published out of order, or a lost message): read it from the store.
        void catchUp().then(() => deliver(m));
      }
    }
  });
  await catchUp();
  replaying = false;
  held.sort((a, b) => a.seq - b.seq);
  if (held.length && held[0]!.seq > last + 1) await catchUp();
  for (const m of held) deliver(m);
  return unsubscribe;
}
