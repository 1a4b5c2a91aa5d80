/**
 * A {@link Transport} over plain TCP (node:net): for trusted networks, or under a
 * protocol that authenticates peers itself. Use TlsTransport across untrusted links.
 *
 * Backpressure: `write()` resolves once node handed the chunk to the kernel and, when
 * the socket's buffer was over its mark, after 'drain'; receiving pauses the socket
 * while more than `readHighWaterBytes` wait for the consumer. Sockets run with
 * TCP_NODELAY and keepalive. `destroy()` resets the connection, so the peer's read fails
 * with CONNECTION_LOST.
 */
import net from 'node:net';
import type { Connection, Listener, ListenOptions, Transport } from './transport.js';
import type { IoOptions } from './block-device.js';
import { assertPositiveInteger } from '../core/validate.js';
import { parseHostPort } from './internal/host-port.js';
import { SocketConnection, receiveInto } from './internal/socket-connection.js';
import { RECEIVE_SLOT_BYTES, ReceivePool } from './internal/receive-pool.js';
import { configureSocket, dialTcp, listenTcp, remoteAddressOf } from './internal/socket-endpoint.js';
import {
  DEFAULT_READ_HIGH_WATER_BYTES,
  checkConnectOptions,
  checkListenOptions,
  checkOptionsObject,
} from './internal/transport-options.js';

/** Options of {@link TcpTransport.create}. */
export interface TcpTransportOptions {
  /**
   * Received bytes a connection queues for a slow consumer before pausing the socket.
   * @defaultValue 1048576 (1 MiB)
   */
  readHighWaterBytes?: number;
}

/** TCP connections between sites; addresses are "host:port" ("[v6]:port" for IPv6). */
export class TcpTransport implements Transport {
  readonly #readHighWaterBytes: number;

  private constructor(readHighWaterBytes: number) {
    this.#readHighWaterBytes = readHighWaterBytes;
  }

  /**
   * Creates a transport (no I/O happens until connect or listen).
   * @throws INVALID_ARGUMENT
   */
  static create(options: TcpTransportOptions = {}): TcpTransport {
    checkOptionsObject(options, 'TcpTransport.create');
    const readHighWaterBytes = options.readHighWaterBytes ?? DEFAULT_READ_HIGH_WATER_BYTES;
    assertPositiveInteger(readHighWaterBytes, 'readHighWaterBytes');
    return new TcpTransport(readHighWaterBytes);
  }

  /**
   * Connects to "host:port".
   * @throws INVALID_ARGUMENT, CONNECTION_REFUSED, TIMEOUT (after `timeoutMs`, default 10 s), ABORTED
   */
  async connect(address: string, options?: IoOptions & { timeoutMs?: number }): Promise<Connection> {
    const target = parseHostPort(address, 'TcpTransport.connect');
    const timeoutMs = checkConnectOptions(options, 'TcpTransport.connect');
    // The client side reads into a pool it reuses when the consumer allows (reuseChunks);
    // node offers no `onread` for accepted sockets, so the listening side reads as usual.
    const receive = receiveInto(new ReceivePool(Math.ceil(this.#readHighWaterBytes / RECEIVE_SLOT_BYTES) + 2));
    const socket = await dialTcp(target, timeoutMs, options?.signal, receive.onread);
    return new SocketConnection({ stream: socket, raw: socket, peer: { address }, readHighWaterBytes: this.#readHighWaterBytes, receive });
  }

  /**
   * Listens on "host:port" (port 0 picks a free one; see `Listener.address`).
   * @throws INVALID_ARGUMENT, ALREADY_EXISTS (address in use), ABORTED, IO_ERROR
   */
  async listen(address: string, options: ListenOptions): Promise<Listener> {
    const target = parseHostPort(address, 'TcpTransport.listen');
    checkListenOptions(options, 'TcpTransport.listen');
    const server = net.createServer((socket) => {
      configureSocket(socket);
      const connection = new SocketConnection({
        stream: socket,
        raw: socket,
        peer: { address: remoteAddressOf(socket) },
        readHighWaterBytes: this.#readHighWaterBytes,
      });
      try {
        options.onConnection(connection);
      } catch (err) {
        connection.destroy(err instanceof Error ? err : undefined);
      }
    });
    return listenTcp(server, target);
  }
}
