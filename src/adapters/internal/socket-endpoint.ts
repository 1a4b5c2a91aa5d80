/**
 * TCP plumbing shared by TcpTransport and TlsTransport: dialing with a deadline,
 * listening, and the socket options every drkit connection gets.
 */
import net from 'node:net';
import type { Listener } from '../transport.js';
import { socketError } from './socket-errors.js';
import { formatHostPort, type HostPort } from './host-port.js';
import { withDeadline } from './transport-options.js';

/**
 * Idle time before TCP keepalive probes start: a peer that vanished behind a partition
 * (no FIN, no RST) is noticed in well under a minute instead of hours, while an idle but
 * healthy replication link costs one tiny probe every 15 s.
 */
export const KEEPALIVE_INITIAL_DELAY_MS = 15_000;

/** Latency over coalescing (frames are written whole and large), and dead-peer detection. */
export function configureSocket(socket: net.Socket): void {
  socket.setNoDelay(true);
  socket.setKeepAlive(true, KEEPALIVE_INITIAL_DELAY_MS);
}

/** The peer address of an accepted socket, as "host:port". */
export function remoteAddressOf(socket: net.Socket): string {
  return formatHostPort(socket.remoteAddress ?? 'unknown', socket.remotePort ?? 0);
}

/**
 * Opens a configured TCP connection to `target` within `timeoutMs`; with `onread`, the
 * socket reads into the buffers it gives (node's option) instead of emitting 'data'.
 * @throws CONNECTION_REFUSED, TIMEOUT, ABORTED, CONNECTION_LOST
 */
export async function dialTcp(target: HostPort, timeoutMs: number, signal: AbortSignal | undefined, onread?: net.OnReadOpts): Promise<net.Socket> {
  const address = formatHostPort(target.host, target.port);
  const socket = net.connect({ host: target.host, port: target.port, ...(onread === undefined ? {} : { onread }) });
  const connected = new Promise<net.Socket>((resolve, reject) => {
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  }).catch((err: unknown) => {
    throw socketError(err, 'CONNECTION_REFUSED', `connect to ${address}`, { address });
  });
  const opened = await withDeadline(connected, { timeoutMs, signal, what: `connect to ${address}`, cancel: () => socket.destroy() });
  configureSocket(opened);
  return opened;
}

/**
 * Makes `server` listen on `target` and returns its Listener.
 * @throws ALREADY_EXISTS (address in use), CONNECTION_REFUSED (address not available), IO_ERROR
 */
export async function listenTcp(server: net.Server, target: HostPort): Promise<Listener> {
  const wanted = formatHostPort(target.host, target.port);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(socketError(err, 'IO_ERROR', `listen on ${wanted}`, { address: wanted }));
    server.once('error', onError);
    server.listen({ host: target.host, port: target.port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  // Errors after listening (accept failing under EMFILE, ...) must not crash the process;
  // each affected connection reports its own failure.
  server.on('error', () => undefined);
  const bound = server.address();
  const port = bound !== null && typeof bound === 'object' ? bound.port : target.port;
  return new SocketListener(server, formatHostPort(target.host, port));
}

/** A listening node:net (or node:tls) server. */
class SocketListener implements Listener {
  readonly address: string;
  readonly #server: net.Server;

  constructor(server: net.Server, address: string) {
    this.#server = server;
    this.address = address;
  }

  /** Stops accepting at once; open connections stay. Never rejects. */
  async close(): Promise<void> {
    // server.close()'s callback waits for every open connection to end; the listening
    // socket itself is released synchronously, which is all close() promises.
    if (this.#server.listening) this.#server.close();
  }
}
