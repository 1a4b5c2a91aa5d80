/**
 * Ending a connection because of an error: tell the peer why (one ERROR frame) when that
 * is safe, then close. Bounded in time: a peer that stops reading cannot keep us here
 * longer than `timeoutMs`, after which the connection is destroyed.
 */
import type { Clock } from '../../adapters/clock.js';
import type { Connection } from '../../adapters/transport.js';
import { DrkitError, toDrkitError } from '../../core/errors.js';
import type { FrameWriter } from './frame-writer.js';
import { MAX_TEXT_CHARS } from './json-shape.js';
import { writeMessage } from './messages.js';

/** How long telling the peer and closing may take: 1 s — an ERROR frame is tiny; longer means the peer is not reading. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 1000;

/** Options of {@link closeWithError}. */
export interface CloseWithErrorOptions {
  readonly clock: Clock;
  /** @defaultValue DEFAULT_CLOSE_TIMEOUT_MS */
  readonly timeoutMs?: number;
}

/**
 * Whether the peer should hear about `error`: not when the connection itself broke, the
 * error came from the peer (no echo), or we never got to frame anything.
 */
function shouldTellPeer(error: DrkitError): boolean {
  if (error.data.fromPeer === true) return false;
  return error.code !== 'CONNECTION_LOST' && error.code !== 'CLOSED';
}

/** Text sent to the peer: authentication failures say nothing about which check failed. */
function peerText(error: DrkitError): string {
  if (error.code === 'AUTH_FAILED') return 'authentication failed';
  return error.message.length > MAX_TEXT_CHARS ? error.message.slice(0, MAX_TEXT_CHARS) : error.message;
}

/**
 * Sends ERROR {code, message} (when safe) and closes `connection`; destroys it when that
 * does not finish within the timeout. Never throws.
 */
export async function closeWithError(connection: Connection, writer: FrameWriter | undefined, error: unknown, options: CloseWithErrorOptions): Promise<void> {
  const drkitError = toDrkitError(error, 'INTERNAL', 'connection failed');
  let timer: { cancel(): void } | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = options.clock.setTimer(options.timeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS, () => resolve('timeout'));
  });
  const goodbye = (async (): Promise<'closed'> => {
    if (writer !== undefined && shouldTellPeer(drkitError)) {
      await writeMessage(writer, { type: 'ERROR', code: drkitError.code, message: peerText(drkitError) }).catch(() => undefined);
    }
    await connection.close();
    return 'closed';
  })();
  let outcome: 'closed' | 'timeout' | 'failed';
  try {
    outcome = await Promise.race([goodbye, deadline]);
  } catch {
    outcome = 'failed';
  } finally {
    timer?.cancel();
  }
  if (outcome !== 'closed') {
    goodbye.catch(() => undefined);
    connection.destroy(drkitError instanceof DrkitError ? drkitError : undefined);
  }
}
