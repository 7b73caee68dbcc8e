import { Redis, type RedisOptions } from 'iovalkey';

export interface ValkeyConnection {
  client: Redis;
  /** The last connection error seen, to explain a failing ping. */
  lastError(): Error | undefined;
}

/**
 * A Valkey/Redis connection that fails fast while the server is down instead of queueing commands
 * forever, and whose connection errors never reach the process as an unhandled 'error' event (the
 * client keeps reconnecting; callers see the failure on their commands and through ping()).
 */
export function connectValkey(
  url: string,
  connectionName: string,
  overrides: RedisOptions = {},
): ValkeyConnection {
  const client = new Redis(url, {
    connectionName,
    connectTimeout: 5_000,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    ...overrides,
  });
  let last: Error | undefined;
  client.on('error', (err: Error) => {
    last = err;
  });
  client.on('ready', () => {
    last = undefined;
  });
  return { client, lastError: () => last };
}

/** Ping with the underlying connection error in the message (more useful than "max retries"). */
export async function pingValkey(connection: ValkeyConnection, what: string): Promise<void> {
  try {
    const reply = await connection.client.ping();
    if (reply !== 'PONG') throw new Error(`unexpected PING reply ${JSON.stringify(reply)}`);
  } catch (err) {
    const cause = connection.lastError() ?? err;
    throw new Error(`${what} unreachable: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
  }
}

/** QUIT when connected (lets pending replies arrive), otherwise just drop the reconnect loop. */
export async function closeValkey(connection: ValkeyConnection): Promise<void> {
  const { client } = connection;
  if (client.status === 'end') return;
  if (client.status === 'ready') {
    try {
      await client.quit();
      return;
    } catch {
      // fall through to a hard disconnect
    }
  }
  client.disconnect();
}
