/**
 * A {@link Connection} over a node:net socket or a node:tls socket riding on one; shared
 * by TcpTransport and TlsTransport.
 *
 * Backpressure, sending: `write()` resolves once node handed the chunk to the kernel (its
 * write callback) and, when `socket.write()` returned false, once 'drain' fired; a sender
 * awaiting each write therefore holds at most one chunk in user space.
 * Backpressure, receiving: received chunks queue until the consumer pulls them; above
 * `readHighWaterBytes` the socket is paused (the kernel window then throttles the peer)
 * and it resumes at half that, so a slow consumer never makes memory grow.
 * Framing: writes travel as length-prefixed records and `close()` sends an end record
 * (stream-records.ts), so an end of stream without it (peer crash, `destroy()`) is
 * CONNECTION_LOST, never mistaken for a clean close.
 * Teardown: `destroy()` also resets the TCP connection (RST) so the peer notices at once,
 * unless `close()` already ended our side (then it closes the socket without a reset).
 */
import type net from 'node:net';
import type { Connection, ConnectionReadOptions, PeerInfo } from '../transport.js';
import type { IoOptions } from '../block-device.js';
import { AbortError, DrkitError } from '../../core/errors.js';
import { assertBytes } from '../../core/validate.js';
import { ReadQueue } from './read-queue.js';
import type { ReceivePool } from './receive-pool.js';
import { END_RECORD, MAX_RECORD_BYTES, RecordDecoder, recordHeader } from './stream-records.js';
import { socketError } from './socket-errors.js';
import { checkIoOptions } from './transport-options.js';

/**
 * How long a closed connection waits for the peer's FIN before resetting it: long
 * enough for a live peer to drain what we sent, short enough not to pin a socket held
 * by a peer that stopped reading.
 */
const CLOSE_LINGER_MS = 30_000;

/** Construction parameters of a {@link SocketConnection}. */
export interface SocketConnectionInit {
  /** The byte stream: the TCP socket itself, or the TLS socket riding on it. */
  readonly stream: net.Socket;
  /** The TCP socket underneath (=== stream for plain TCP); reset by destroy(). */
  readonly raw: net.Socket;
  readonly peer: PeerInfo;
  /** Receive queue bound above which the socket is paused. */
  readonly readHighWaterBytes: number;
  /** Bytes already read from `stream` (during a handshake) that belong to the application. */
  readonly initialBytes?: Uint8Array;
  /**
   * The socket reads into this pool (it was opened with `onread`, see {@link receiveInto})
   * instead of emitting 'data'. The pool's `onRead` sink is attached here.
   */
  readonly receive?: ReceiveInto;
}

/** A socket's `onread` wiring to a {@link ReceivePool}: what `dialTcp` takes and SocketConnection attaches to. */
export interface ReceiveInto {
  readonly pool: ReceivePool;
  /** node's `onread` option for `net.connect`. */
  readonly onread: { buffer: () => Uint8Array; callback: (bytesRead: number, buffer: Uint8Array) => boolean };
  /** Where reads go; until attached, they wait (in arrival order) in `early`. */
  attach(sink: (chunk: Uint8Array, slot: Uint8Array) => void): void;
}

/**
 * `onread` wiring for a socket not yet wrapped in a SocketConnection: reads that land
 * before the connection attaches (the peer may speak first) wait in order.
 */
export function receiveInto(pool: ReceivePool): ReceiveInto {
  let sink: ((chunk: Uint8Array, slot: Uint8Array) => void) | undefined;
  const early: { chunk: Uint8Array; slot: Uint8Array }[] = [];
  return {
    pool,
    onread: {
      buffer: () => pool.take(),
      callback: (bytesRead, buffer) => {
        const chunk = buffer.subarray(0, bytesRead);
        if (sink !== undefined) sink(chunk, buffer);
        else early.push({ chunk, slot: buffer });
        return true; // pausing is the connection's (readHighWaterBytes), not node's
      },
    },
    attach(s) {
      sink = s;
      for (const e of early.splice(0)) s(e.chunk, e.slot);
    },
  };
}

interface PendingWrite {
  accepted: boolean;
  drained: boolean;
  settle: (err?: Error) => void;
}

/** See the module comment. */
export class SocketConnection implements Connection {
  readonly peer: PeerInfo;
  readonly #stream: net.Socket;
  readonly #raw: net.Socket;
  readonly #queue: ReadQueue;
  readonly #readHighWaterBytes: number;
  readonly #pending = new Set<PendingWrite>();
  readonly #decoder = new RecordDecoder();
  readonly #pool: ReceivePool | undefined;
  #paused = false;
  #peerEnded = false;
  #closing: Promise<void> | undefined;
  #failure: Error | undefined;

  constructor(init: SocketConnectionInit) {
    this.peer = Object.freeze({ ...init.peer });
    this.#stream = init.stream;
    this.#raw = init.raw;
    this.#readHighWaterBytes = init.readHighWaterBytes;
    const pool = init.receive?.pool;
    this.#pool = pool;
    this.#queue = new ReadQueue({
      onConsumed: () => this.#maybeResume(),
      ...(pool === undefined ? {} : { onReleased: (chunk: Uint8Array) => pool.release(chunk) }),
    });
    const stream = this.#stream;
    if (init.initialBytes !== undefined) this.#onData(init.initialBytes);
    if (init.receive !== undefined) {
      init.receive.attach((chunk, slot) => {
        this.#onData(chunk);
        pool?.filled(slot);
      });
    } else {
      stream.on('data', (chunk: Buffer) => this.#onData(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
    }
    stream.on('drain', () => this.#onDrain());
    stream.on('end', () => {
      if (this.#decoder.ended) return;
      this.#fail(new DrkitError('CONNECTION_LOST', `${this.peer.address} ended the stream without closing it (crash or destroy)`, { data: { peer: this.peer.address } }));
    });
    stream.on('error', (err: Error) => this.#fail(socketError(err, 'CONNECTION_LOST', `connection with ${this.peer.address} broke`)));
    stream.on('close', () => {
      const data = { peer: this.peer.address };
      this.#fail(
        this.#peerEnded || this.#closing !== undefined
          ? new DrkitError('CLOSED', `connection with ${this.peer.address} was closed`, { data })
          : new DrkitError('CONNECTION_LOST', `connection with ${this.peer.address} closed without an end of stream`, { data }),
      );
    });
    // The raw socket's errors also surface on the TLS stream; this only keeps them from
    // being unhandled 'error' events.
    if (this.#raw !== stream) this.#raw.on('error', () => undefined);
    stream.resume();
  }

  /**
   * Sends `bytes`; see the module comment for when it resolves.
   * @throws INVALID_ARGUMENT, ABORTED (the connection is then destroyed, since part of
   *   the chunk may be on the wire), CLOSED after close() by either side, CONNECTION_LOST
   */
  async write(bytes: Uint8Array, options?: IoOptions): Promise<void> {
    assertBytes(bytes, 'bytes');
    checkIoOptions(options, 'Connection.write');
    this.#assertWritable();
    if (bytes.byteLength === 0) return;
    if (bytes.byteLength > MAX_RECORD_BYTES) {
      await this.write(bytes.subarray(0, MAX_RECORD_BYTES), options);
      return this.write(bytes.subarray(MAX_RECORD_BYTES), options);
    }
    const signal = options?.signal;
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const err = new AbortError('Connection.write aborted', { cause: signal?.reason });
        write.settle(err);
        this.destroy(new DrkitError('CONNECTION_LOST', 'connection destroyed: a write was aborted after it started', { cause: err }));
      };
      const write: PendingWrite = {
        accepted: false,
        drained: true,
        settle: (err) => {
          if (!this.#pending.delete(write)) return;
          signal?.removeEventListener('abort', onAbort);
          if (err === undefined) resolve();
          else reject(err);
        },
      };
      this.#pending.add(write);
      signal?.addEventListener('abort', onAbort, { once: true });
      // Corked so header and payload leave in one writev, without copying the payload.
      this.#stream.cork();
      this.#stream.write(recordHeader(bytes.byteLength));
      const flowing = this.#stream.write(bytes, (err) => {
        write.accepted = true;
        if (err) write.settle(this.#failure ?? socketError(err, 'CONNECTION_LOST', `write to ${this.peer.address} failed`));
        else if (write.drained) write.settle();
      });
      this.#stream.uncork();
      if (!flowing && this.#pending.has(write)) write.drained = false;
    });
  }

  /** Received bytes in order; see Connection.read. @throws INVALID_ARGUMENT on a second call */
  read(options?: ConnectionReadOptions): AsyncIterable<Uint8Array> {
    const iterable = this.#queue.iterate(options);
    this.#pool?.setReuse(options?.reuseChunks === true);
    return iterable;
  }

  /**
   * Ends our sending direction after everything written (FIN, or TLS close_notify + FIN),
   * resolves once node flushed it to the kernel, and ends our reading. Never rejects.
   */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      const stream = this.#stream;
      if (this.#failure !== undefined || stream.destroyed) return resolve();
      const done = (): void => {
        stream.off('close', done);
        this.#queue.end();
        // Keep draining so the peer's FIN gets read and the socket closes by itself.
        this.#paused = false;
        stream.resume();
        resolve();
      };
      stream.once('close', done);
      stream.end(END_RECORD, done);
      const linger = setTimeout(() => this.#raw.destroy(), CLOSE_LINGER_MS);
      linger.unref();
      stream.once('close', () => clearTimeout(linger));
    });
    return this.#closing;
  }

  /** Resets the connection; pending and later I/O rejects with `reason` (default CONNECTION_LOST). */
  destroy(reason?: Error): void {
    const failure = reason ?? new DrkitError('CONNECTION_LOST', `connection with ${this.peer.address} destroyed`, { data: { peer: this.peer.address } });
    this.#failure ??= failure;
    this.#queue.fail(failure, true);
    for (const write of [...this.#pending]) write.settle(failure);
    if (!this.#raw.destroyed) {
      if (this.#stream.writableEnded || this.#raw.writableEnded) {
        // After end() the kernel may still hold our shutdown request: libuv refuses a
        // reset then (EINVAL) and node drops the socket without closing its handle, which
        // leaks the fd and makes the process spin at exit (node's CleanupHandles). Our
        // end record is on its way anyway, so a plain close is what the peer should see.
        this.#raw.destroy();
      } else {
        try {
          this.#raw.resetAndDestroy();
        } catch {
          this.#raw.destroy();
        }
      }
    }
    this.#stream.destroy();
  }

  #assertWritable(): void {
    if (this.#closing !== undefined) throw new DrkitError('CLOSED', `connection with ${this.peer.address} was closed`);
    if (this.#peerEnded) throw new DrkitError('CLOSED', `${this.peer.address} closed the connection`);
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#stream.destroyed) throw new DrkitError('CONNECTION_LOST', `connection with ${this.peer.address} is gone`);
  }

  /**
   * `chunk` is a plain Uint8Array view: Buffer#slice shares memory where Uint8Array#slice
   * copies, and consumers are written against Uint8Array.
   */
  #onData(chunk: Uint8Array): void {
    try {
      this.#decoder.feed(chunk, (payload) => {
        this.#pool?.retain(payload);
        this.#queue.push(payload);
      });
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    if (this.#decoder.ended && !this.#peerEnded) {
      this.#peerEnded = true;
      this.#queue.end();
      // The peer closed both directions: answer with our end record and FIN, so its
      // side sees a clean close too.
      void this.close();
    }
    if (!this.#paused && this.#queue.bufferedBytes > this.#readHighWaterBytes) {
      this.#paused = true;
      this.#stream.pause();
    }
  }

  #maybeResume(): void {
    if (this.#paused && (this.#queue.closed || this.#queue.bufferedBytes <= this.#readHighWaterBytes / 2)) {
      this.#paused = false;
      this.#stream.resume();
    }
  }

  #onDrain(): void {
    for (const write of [...this.#pending]) {
      write.drained = true;
      if (write.accepted) write.settle();
    }
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    const failure = this.#failure;
    this.#queue.fail(failure, false);
    for (const write of [...this.#pending]) write.settle(failure);
  }
}
