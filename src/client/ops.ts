import { ClientError, EXIT } from './api.js';
import type { CommandContext } from './context.js';

/**
 * `deploy`, `logs` and `sessions` use the deployer, observe and agents routes. This server does
 * not offer them (yet): said clearly, with its own exit code, rather than a bare 404.
 */
export async function notOffered(
  ctx: CommandContext,
  operation: { method: string; path: string },
): Promise<number> {
  const api = ctx.api();
  if (await api.offers(operation.method, operation.path)) {
    throw new ClientError(
      `${ctx.command}: this client does not know ${operation.method} ${operation.path} yet; use the API directly`,
      EXIT.unavailable,
    );
  }
  throw new ClientError(
    `${ctx.command} is not available on this server (it offers no ${operation.method} ${operation.path})`,
    EXIT.unavailable,
  );
}
