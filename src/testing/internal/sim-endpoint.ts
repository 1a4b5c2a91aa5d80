/**
 * One side of a SimulatedNetwork connection: the `Connection` a test or a site sees.
 *
 * It behaves like a TCP socket over the simulated wire: writes are cut into segments
 * (at most {@link SEGMENT_BYTES}), each numbered; the receiver reassembles them in
 * sequence (so jitter, retransmission and reordering never reorder bytes within a
 * connection); the sender's window is the bytes written but not yet read by the peer's
 * application, released one-way latency after the read (the ACK). `close()` sends a FIN
 * behind the data; a break (reset, partition, crash, `destroy`) fails everything at once.
 * Bytes nobody will read (after close(), or after the reader left its loop) are
 * discarded on arrival and acknowledged at once, so the peer's writes never stall on them.
 */
import type { IoOptions } from '../../adapters/block-device.js';
import type { Connection, PeerInfo } from '../../adapters/transport.js';
import { AbortError, DrkitError, throwIfAborted } from '../../core/errors.js';
import { assertBytes } from '../../core/validate.js';

/**
 * Largest segment a write is cut into: the unit of bandwidth sharing, loss, reorder and
 * reset. 64 KiB, like a TSO super-segment: small enough that connections sharing a link
 * interleave, large enough that a 1 GiB simulated transfer is ~16k events, not ~700k.
 */
export const SEGMENT_BYTES = 64 * 1024;

/** A numbered piece of one direction of a connection; `bytes === null` is the FIN. */
export interface Segment {
  readonly seq: number;
  readonly bytes: Uint8Array | null;
}

/** What an endpoint needs from the network it lives on. */
export interface EndpointFabric {
  /** Puts `segment` on the wire from `from` towards its peer. */
  transmit(from: SimEndpoint, segment: Segment): void;
  /** The application at `reader` consumed `byteLength` bytes: credit the peer's window after the ACK crosses the link. */
  acknowledge(reader: SimEndpoint, byteLength: number): void;
  /** `from` was destroyed locally: the peer learns of it (RST) one-way latency later. */
  sendReset(from: SimEndpoint): void;
  /** `endpoint` will neither send nor receive again (closed both ways, or broken). */
  endpointDone(endpoint: SimEndpoint): void;
}

interface PendingWrite {
  /** Remaining segments of a write; null for a queued FIN. */
  readonly segments: Uint8Array[] | null;
  nextIndex: number;
  resolve(): void;
  reject(err: Error): void;
}

/** See the module comment. Constructed in pairs by the network. */
export class SimEndpoint implements Connection {
  readonly peer: PeerInfo;
  /** Host this endpoint lives on. */
  readonly host: string;
  /** "host:port" of this endpoint (what the peer sees as `peer.address`). */
  readonly localAddress: string;
  readonly #fabric: EndpointFabric;
  readonly #sendBufferBytes: number;
  #other: SimEndpoint | undefined;
  #nextSendSeq = 0;
  #nextReceiveSeq = 0;
  readonly #outOfOrder = new Map<number, Segment>();
  #inbox: Uint8Array[] = [];
  #unackedBytes = 0;
  readonly #sendQueue: PendingWrite[] = [];
  #localClosed = false;
  #closePromise: Promise<void> | undefined;
  #finSent = false;
  #peerFinished = false;
  #error: Error | undefined;
  #readCalled = false;
  /** The reader left its loop early, or close() was called: later arrivals are discarded. */
  #discarding = false;
  #wakeReader: (() => void) | undefined;
  #done = false;

  constructor(fabric: EndpointFabric, host: string, localAddress: string, peerAddress: string, sendBufferBytes: number) {
    this.#fabric = fabric;
    this.host = host;
    this.localAddress = localAddress;
    this.peer = Object.freeze({ address: peerAddress });
    this.#sendBufferBytes = sendBufferBytes;
  }

  /** Links the two endpoints of a connection. */
  pairWith(other: SimEndpoint): void {
    this.#other = other;
  }

  /** The other end of the connection. */
  get other(): SimEndpoint {
    if (this.#other === undefined) throw new DrkitError('INTERNAL', 'simulated endpoint used before pairing');
    return this.#other;
  }

  /** True once the connection broke at this end; nothing is delivered to it any more. */
  get broken(): boolean {
    return this.#error !== undefined;
  }

  /** Bytes written here and not yet read by the peer's application (what the send buffer bound applies to). */
  get unackedBytes(): number {
    return this.#unackedBytes;
  }

  /** @throws INVALID_ARGUMENT, ABORTED, CLOSED (after close() by either side), CONNECTION_LOST (broken) */
  write(bytes: Uint8Array, options: IoOptions = {}): Promise<void> {
    try {
      assertBytes(bytes, 'bytes');
      throwIfAborted(options.signal);
    } catch (err) {
      return Promise.reject(err);
    }
    const refusal = this.#writeRefusal();
    if (refusal !== undefined) return Promise.reject(refusal);
    if (bytes.byteLength === 0) return Promise.resolve();
    const segments: Uint8Array[] = [];
    // slice() copies: the caller may reuse `bytes` once write() resolves.
    for (let byteOffset = 0; byteOffset < bytes.byteLength; byteOffset += SEGMENT_BYTES) {
      segments.push(bytes.slice(byteOffset, Math.min(byteOffset + SEGMENT_BYTES, bytes.byteLength)));
    }
    return this.#enqueue(segments, options.signal);
  }

  /** @throws INVALID_ARGUMENT when called a second time (a stream is iterated once) */
  read(): AsyncIterable<Uint8Array> {
    if (this.#readCalled) {
      throw new DrkitError('INVALID_ARGUMENT', 'Connection.read() may be called only once', { data: { address: this.localAddress } });
    }
    this.#readCalled = true;
    return this.#iterate();
  }

  close(): Promise<void> {
    if (this.#closePromise !== undefined) return this.#closePromise;
    this.#localClosed = true;
    // Our reader still gets what already arrived; what arrives later nobody will read.
    this.#discarding = true;
    this.#wake();
    if (this.#error !== undefined) {
      this.#closePromise = Promise.resolve();
    } else {
      this.#closePromise = new Promise<void>((resolve) => {
        this.#sendQueue.push({ segments: null, nextIndex: 0, resolve, reject: () => resolve() });
        this.#admit();
      });
    }
    return this.#closePromise;
  }

  destroy(reason?: Error): void {
    if (this.#error !== undefined || this.#done) return;
    this.fail(reason ?? new DrkitError('CONNECTION_LOST', 'connection destroyed', { data: { address: this.localAddress } }));
    this.#fabric.sendReset(this);
  }

  /** Breaks this end at once: pending writes reject with `err`, the reader throws it. */
  fail(err: Error): void {
    if (this.#error !== undefined) return;
    this.#error = err;
    this.#inbox = [];
    this.#outOfOrder.clear();
    for (const entry of this.#sendQueue.splice(0)) entry.reject(err);
    this.#wake();
    this.#checkDone();
  }

  /** A segment arrived from the peer (any order); delivers what is now in sequence. */
  receive(segment: Segment): void {
    if (this.#error !== undefined) return;
    if (segment.seq !== this.#nextReceiveSeq) {
      this.#outOfOrder.set(segment.seq, segment);
      return;
    }
    let next: Segment | undefined = segment;
    while (next !== undefined && this.#error === undefined) {
      this.#outOfOrder.delete(next.seq);
      this.#nextReceiveSeq++;
      this.#accept(next);
      next = this.#outOfOrder.get(this.#nextReceiveSeq);
    }
  }

  /** The peer's application read `byteLength` of our bytes (the ACK arrived). */
  credit(byteLength: number): void {
    if (this.#error !== undefined) return;
    this.#unackedBytes -= byteLength;
    this.#admit();
  }

  #writeRefusal(): Error | undefined {
    if (this.#error !== undefined) return this.#error;
    if (this.#localClosed) return new DrkitError('CLOSED', 'write after close()', { data: { address: this.localAddress } });
    if (this.#peerFinished) {
      return new DrkitError('CLOSED', 'the peer closed the connection', { data: { address: this.localAddress, peer: this.peer.address } });
    }
    return undefined;
  }

  #enqueue(segments: Uint8Array[], signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.#sendQueue.indexOf(entry);
        if (index < 0) return;
        this.#sendQueue.splice(index, 1);
        reject(new AbortError('write aborted', { cause: signal?.reason }));
        // A prefix of this write is on the wire: the stream can no longer be framed, so
        // the connection dies (the Transport contract); otherwise it stays usable.
        if (entry.nextIndex > 0) {
          this.destroy(new DrkitError('CONNECTION_LOST', 'a write was aborted half-sent', { data: { address: this.localAddress, reason: 'aborted write' } }));
        }
      };
      const entry: PendingWrite = {
        segments,
        nextIndex: 0,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#sendQueue.push(entry);
      this.#admit();
    });
  }

  /** Moves queued segments onto the wire while the window has room; FINs take no room. */
  #admit(): void {
    while (this.#sendQueue.length > 0 && this.#error === undefined) {
      const head = this.#sendQueue[0]!;
      if (head.segments === null) {
        this.#sendQueue.shift();
        this.#finSent = true;
        this.#fabric.transmit(this, { seq: this.#nextSendSeq++, bytes: null });
        head.resolve();
        this.#checkDone();
        continue;
      }
      while (head.nextIndex < head.segments.length) {
        // Wait while the peer has not read a full send buffer; an empty window always
        // admits one segment, so a bound smaller than a segment still makes progress.
        if (this.#unackedBytes > 0 && this.#unackedBytes >= this.#sendBufferBytes) return;
        const bytes = head.segments[head.nextIndex++]!;
        this.#unackedBytes += bytes.byteLength;
        this.#fabric.transmit(this, { seq: this.#nextSendSeq++, bytes });
      }
      this.#sendQueue.shift();
      head.resolve();
    }
  }

  #accept(segment: Segment): void {
    if (segment.bytes === null) {
      this.#peerFinished = true;
      // The peer closed both directions: our unsent data has nowhere to go. Queued FINs
      // stay, so our own close() completes.
      const lost = new DrkitError('CLOSED', 'the peer closed the connection', { data: { address: this.localAddress, peer: this.peer.address } });
      for (let i = this.#sendQueue.length - 1; i >= 0; i--) {
        const entry = this.#sendQueue[i]!;
        if (entry.segments !== null) {
          this.#sendQueue.splice(i, 1);
          entry.reject(lost);
        }
      }
      this.#admit();
      this.#wake();
      this.#checkDone();
      return;
    }
    if (this.#discarding) {
      this.#fabric.acknowledge(this, segment.bytes.byteLength);
      return;
    }
    this.#inbox.push(segment.bytes);
    this.#wake();
  }

  async *#iterate(): AsyncGenerator<Uint8Array> {
    let finished = false;
    try {
      for (;;) {
        if (this.#error !== undefined) throw this.#error;
        const chunk = this.#inbox.shift();
        if (chunk !== undefined) {
          this.#fabric.acknowledge(this, chunk.byteLength);
          yield chunk;
          continue;
        }
        if (this.#peerFinished || this.#localClosed) break;
        await new Promise<void>((resolve) => {
          this.#wakeReader = resolve;
        });
      }
      finished = true;
    } finally {
      // Leaving the loop early means nobody will read this connection again: discard
      // what is buffered and what comes, so the peer's writes never stall on a window
      // nobody drains (the connection itself stays open for writing).
      if (!finished) {
        this.#discarding = true;
        this.#discardInbox();
      }
    }
  }

  #discardInbox(): void {
    let byteLength = 0;
    for (const chunk of this.#inbox) byteLength += chunk.byteLength;
    this.#inbox = [];
    if (byteLength > 0 && this.#error === undefined) this.#fabric.acknowledge(this, byteLength);
  }

  #wake(): void {
    const wake = this.#wakeReader;
    this.#wakeReader = undefined;
    wake?.();
  }

  #checkDone(): void {
    if (this.#done) return;
    if (this.#error !== undefined || (this.#finSent && this.#peerFinished)) {
      this.#done = true;
      this.#fabric.endpointDone(this);
    }
  }
}
