/**
 * Relay: the bridgehead of a remote site "with a proxy" (seed). It accepts connections on
 * one address and forwards each, byte for byte in both directions, to one fixed
 * destination (`to`), the remote site's own address. It knows no protocol and holds no
 * key: the handshake and every frame run end to end between the two sites.
 *
 * Promise (see docs/protocol.md, relays): a relay can delay, drop, cut or refuse sessions,
 * and see their sizes and timing; it cannot read what the frames do not already show,
 * nor change, replay, reorder or inject a byte that lands — under a pre-shared key every
 * frame after the handshake carries a tag keyed from that handshake, which a relay cannot
 * compute, so tampering ends the session with AUTH_FAILED and nothing is committed. Its
 * destination is fixed when it starts: a client cannot steer it anywhere else.
 *
 * Memory is bounded: each direction holds at most one chunk the transport delivered,
 * written with the transport's backpressure before the next is read.
 */
import { DrkitError, toDrkitError } from '../core/errors.js';
import { assertPositiveInteger } from '../core/validate.js';
import type { Connection, Listener, Transport } from '../adapters/transport.js';

/**
 * Connections relayed at once by default: 256. A site opens one per transfer (the
 * Protector at most `concurrency`, default 4), so this serves dozens of sites while
 * bounding sockets and buffers.
 */
export const DEFAULT_RELAY_MAX_CONNECTIONS = 256;

/** Options of {@link startRelay}. */
export interface RelayOptions {
  /** Address to accept connections on ("host:port"; port 0 picks one). */
  readonly listen: string;
  /** The one destination every connection is forwarded to: the remote site's address. */
  readonly to: string;
  /** Carries both legs (TcpTransport in production; the same kind the sites use). */
  readonly transport: Transport;
  /** Deadline of connecting to `to`. @defaultValue 10000 */
  readonly connectTimeoutMs?: number;
  /** Connections relayed at once; more are closed at once. @defaultValue {@link DEFAULT_RELAY_MAX_CONNECTIONS} */
  readonly maxConnections?: number;
  /** Called with why a relayed connection ended abnormally (destination unreachable, a leg lost). Errors it throws are ignored. */
  readonly onError?: (error: DrkitError) => void;
}

/** Counters of a running relay. */
export interface RelayStats {
  /** Connections accepted and forwarded (ended ones included). */
  readonly connections: number;
  /** Connections relayed now. */
  readonly active: number;
  /** Connections closed unforwarded: over `maxConnections`, or the destination refused. */
  readonly refused: number;
  /** Bytes forwarded from clients to the destination. */
  readonly forwardedBytes: number;
  /** Bytes forwarded from the destination back to clients. */
  readonly returnedBytes: number;
}

/** A running relay. */
export interface Relay {
  /** The address clients connect to (the real port when 0 was asked). */
  readonly address: string;
  stats(): RelayStats;
  /** Stops accepting and tears down every relayed connection. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts a relay from `listen` to `to` (see the module comment).
 * @throws INVALID_ARGUMENT for bad options; the transport's listen errors (ALREADY_EXISTS, ...)
 */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  if (typeof options !== 'object' || options === null) throw new DrkitError('INVALID_ARGUMENT', 'relay options must be an object');
  for (const f of ['listen', 'to'] as const) {
    if (typeof options[f] !== 'string' || options[f] === '') throw new DrkitError('INVALID_ARGUMENT', `relay ${f} must be a "host:port" address`, { data: { field: f } });
  }
  if (typeof options.transport !== 'object' || options.transport === null) throw new DrkitError('INVALID_ARGUMENT', 'relay transport is required', { data: { field: 'transport' } });
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  assertPositiveInteger(connectTimeoutMs, 'connectTimeoutMs');
  const maxConnections = options.maxConnections ?? DEFAULT_RELAY_MAX_CONNECTIONS;
  assertPositiveInteger(maxConnections, 'maxConnections');

  const counters = { connections: 0, refused: 0, forwardedBytes: 0, returnedBytes: 0 };
  const open = new Set<Connection>();
  let active = 0;
  let closed = false;
  const report = (err: unknown, message: string) => {
    try {
      options.onError?.(toDrkitError(err, 'CONNECTION_LOST', message));
    } catch {
      // A listener's bug must not stop the relay.
    }
  };

  const relayOne = async (client: Connection): Promise<void> => {
    let server: Connection;
    try {
      server = await options.transport.connect(options.to, { timeoutMs: connectTimeoutMs });
    } catch (err) {
      counters.refused++;
      open.delete(client);
      active--;
      client.destroy();
      report(err, `relay could not reach ${options.to}`);
      return;
    }
    if (closed) {
      server.destroy();
      active--;
      return;
    }
    counters.connections++;
    open.add(server);
    // One leg ending cleanly closes the other after what it sent; a leg breaking tears down both.
    const pump = async (from: Connection, to: Connection, count: (n: number) => void) => {
      try {
        for await (const chunk of from.read()) {
          await to.write(chunk);
          count(chunk.byteLength);
        }
        await to.close();
      } catch (err) {
        from.destroy();
        to.destroy();
        if (!closed) report(err, `relayed connection to ${options.to} broke`);
      }
    };
    await Promise.all([
      pump(client, server, (n) => (counters.forwardedBytes += n)),
      pump(server, client, (n) => (counters.returnedBytes += n)),
    ]);
    open.delete(client);
    open.delete(server);
    active--;
  };

  const listener: Listener = await options.transport.listen(options.listen, {
    onConnection: (client) => {
      if (closed || active >= maxConnections) {
        counters.refused++;
        client.destroy();
        return;
      }
      open.add(client);
      active++;
      void relayOne(client);
    },
  });

  return {
    address: listener.address,
    stats: () => ({ ...counters, active }),
    close: async () => {
      if (closed) return;
      closed = true;
      await listener.close();
      for (const c of open) c.destroy();
      open.clear();
    },
  };
}
