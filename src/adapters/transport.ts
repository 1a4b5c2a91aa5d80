/**
 * The Transport contract: reliable, ordered byte streams between sites (TCP, TLS, an
 * in-memory pair, a simulated network). drkit's wire protocol frames messages on top.
 *
 * Backpressure promise: `write()` resolves only once the transport has accepted the
 * bytes without exceeding its buffer bound (for sockets: after 'drain' when the kernel
 * buffer was full), so a sender that awaits each write never buffers unboundedly.
 * Failure promise: a broken connection rejects pending and later writes and ends the
 * read iteration with a coded error (`CONNECTION_LOST`); `close()` ends it cleanly.
 */
import type { IoOptions } from './block-device.js';
import type { DrkitError } from '../core/errors.js';

/** What a connection knows about its peer. */
export interface PeerInfo {
  /** Transport-level address of the peer ("127.0.0.1:4001", "siteB:7000", ...). */
  readonly address: string;
  /** For TLS: SHA-256 fingerprint (hex) of the peer's verified certificate. */
  readonly certificateFingerprint?: string;
  /** For TLS: the peer certificate's subject common name. */
  readonly commonName?: string;
}

/** Options of {@link Connection.read}. */
export interface ConnectionReadOptions {
  /**
   * The consumer promises to keep no reference to a chunk (views included) once it asks
   * for the next one, so the transport may receive into the same memory again: fewer
   * allocations, less garbage and a flatter heap for a process that receives a lot
   * (TcpTransport's client side does). @defaultValue false: every chunk stays the consumer's
   */
  readonly reuseChunks?: boolean;
}

/** One established, bidirectional byte stream. */
export interface Connection {
  readonly peer: PeerInfo;
  /**
   * Sends bytes in order; resolves when accepted (see backpressure promise). The caller
   * may reuse `bytes` afterwards. An aborted write rejects with ABORTED; if part of it may
   * already be on the wire the transport destroys the connection (the stream could no
   * longer be framed), otherwise the connection stays usable. After `close()` by either
   * side writes reject with CLOSED.
   */
  write(bytes: Uint8Array, options?: IoOptions): Promise<void>;
  /**
   * Received bytes, in order, in chunks of any size. Ends when the peer closes; throws a
   * DrkitError (`CONNECTION_LOST`, ...) when the connection breaks. Iterate once (a second
   * call throws INVALID_ARGUMENT). Leaving the loop early discards later incoming bytes,
   * so a peer that keeps writing is never blocked by bytes nobody will read.
   * With `reuseChunks` the transport may read later bytes into a chunk's memory once the
   * consumer asked for the next chunk (a transport that cannot ignores the option).
   */
  read(options?: ConnectionReadOptions): AsyncIterable<Uint8Array>;
  /**
   * Flushes what was written and closes both directions: the peer reads everything, then
   * its iteration ends; our own iteration ends after what already arrived. Idempotent;
   * never rejects (delivery is confirmed only by the peer's protocol-level reply).
   */
  close(): Promise<void>;
  /** Tears the connection down at once; pending I/O rejects with `reason` (default CONNECTION_LOST). */
  destroy(reason?: Error): void;
}

/** A listening endpoint. */
export interface Listener {
  /** The address peers connect to (with the real port when 0 was asked). */
  readonly address: string;
  /** Stops accepting; open connections stay. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link Transport.listen}. */
export interface ListenOptions extends IoOptions {
  /** Called for every accepted connection. Errors it throws destroy that connection. */
  onConnection: (connection: Connection) => void;
  /**
   * Called when an incoming connection failed before it could be delivered (TLS
   * handshake, certificate refused: AUTH_FAILED, handshake TIMEOUT, reset). Such a
   * connection never reaches `onConnection`. Errors it throws are ignored.
   */
  onError?: (error: DrkitError) => void;
}

/** A way to reach sites. */
export interface Transport {
  /** Opens a connection. @throws CONNECTION_REFUSED, CONNECTION_LOST, TIMEOUT, AUTH_FAILED (TLS), ABORTED */
  connect(address: string, options?: IoOptions & { timeoutMs?: number }): Promise<Connection>;
  /**
   * Starts accepting connections at `address` ("host:port"; port 0 picks one).
   * @throws INVALID_ARGUMENT, ALREADY_EXISTS (address in use), ABORTED
   */
  listen(address: string, options: ListenOptions): Promise<Listener>;
}
