/**
 * One end of an in-process connection of MemoryTransport. Each direction is a
 * {@link ReadQueue} owned by the receiving end; the sending end waits for room in it.
 *
 * Backpressure: a write waits (in call order) until the peer holds fewer than
 * `highWaterBytes` unread bytes, then hands over a copy of its chunk whole, so a
 * direction never buffers more than `highWaterBytes` plus one write. An aborted write
 * has sent nothing, so the connection stays usable.
 */
import type { Connection, PeerInfo } from '../transport.js';
import type { IoOptions } from '../block-device.js';
import { AbortError, DrkitError } from '../../core/errors.js';
import { assertBytes } from '../../core/validate.js';
import { ReadQueue } from './read-queue.js';
import { checkIoOptions } from './transport-options.js';

/** See the module comment. */
export class MemoryConnection implements Connection {
  readonly peer: PeerInfo;
  readonly #highWaterBytes: number;
  /** What the other end wrote to us and we have not read yet. */
  readonly #inbox: ReadQueue;
  #other: MemoryConnection | undefined;
  /** Serialises writes so concurrent ones keep their call order. */
  #writeTail: Promise<void> = Promise.resolve();
  /** Writers waiting for room in the other end's inbox. */
  readonly #roomWaiters = new Set<() => void>();
  #closeRequested = false;
  #closing: Promise<void> | undefined;
  #peerClosed = false;
  #failure: Error | undefined;

  private constructor(peerAddress: string, highWaterBytes: number) {
    this.peer = Object.freeze({ address: peerAddress });
    this.#highWaterBytes = highWaterBytes;
    this.#inbox = new ReadQueue({ onConsumed: () => this.#other!.#wakeWriters() });
  }

  /** Two connected ends: `[a, b]` where a's peer is `bAddress` and b's peer is `aAddress`. */
  static pair(aAddress: string, bAddress: string, highWaterBytes: number): [MemoryConnection, MemoryConnection] {
    const a = new MemoryConnection(bAddress, highWaterBytes);
    const b = new MemoryConnection(aAddress, highWaterBytes);
    a.#other = b;
    b.#other = a;
    return [a, b];
  }

  /**
   * Sends a copy of `bytes` once the peer has room (see the module comment).
   * @throws INVALID_ARGUMENT, ABORTED, CLOSED after close() by either side, CONNECTION_LOST
   */
  async write(bytes: Uint8Array, options?: IoOptions): Promise<void> {
    assertBytes(bytes, 'bytes');
    checkIoOptions(options, 'Connection.write');
    if (this.#closeRequested) throw new DrkitError('CLOSED', `connection with ${this.peer.address} was closed`);
    this.#assertWritable();
    const signal = options?.signal;
    const turn = this.#writeTail;
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    this.#writeTail = turn.then(() => mine);
    try {
      await this.#wait(turn, signal);
      for (;;) {
        this.#assertWritable();
        const other = this.#other as MemoryConnection;
        if (other.#inbox.bufferedBytes < this.#highWaterBytes) {
          other.#inbox.push(bytes.slice());
          return;
        }
        await this.#wait(new Promise<void>((resolve) => this.#roomWaiters.add(resolve)), signal);
      }
    } finally {
      release();
    }
  }

  /** Received bytes in order. @throws INVALID_ARGUMENT on a second call */
  read(): AsyncIterable<Uint8Array> {
    return this.#inbox.iterate();
  }

  /** Lets pending writes finish, then ends both directions. Never rejects. */
  close(): Promise<void> {
    this.#closeRequested = true;
    this.#closing ??= this.#writeTail.then(() => {
      const other = this.#other as MemoryConnection;
      this.#inbox.end();
      this.#wakeWriters();
      if (this.#failure !== undefined) return;
      other.#peerClosed = true;
      other.#inbox.end();
      other.#wakeWriters();
    });
    return this.#closing;
  }

  /** Tears down both ends; our pending I/O rejects with `reason`, the peer's with CONNECTION_LOST. */
  destroy(reason?: Error): void {
    if (this.#failure !== undefined) return;
    const data = { peer: this.peer.address };
    this.#failure = reason ?? new DrkitError('CONNECTION_LOST', `connection with ${this.peer.address} destroyed`, { data });
    this.#inbox.fail(this.#failure, true);
    this.#wakeWriters();
    const other = this.#other as MemoryConnection;
    if (other.#failure === undefined) {
      other.#failure = new DrkitError('CONNECTION_LOST', `${other.peer.address} reset the connection`, { data: { peer: other.peer.address } });
      other.#inbox.fail(other.#failure, false);
      other.#wakeWriters();
    }
  }

  #assertWritable(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#peerClosed) throw new DrkitError('CLOSED', `${this.peer.address} closed the connection`);
  }

  #wakeWriters(): void {
    const waiters = [...this.#roomWaiters];
    this.#roomWaiters.clear();
    for (const wake of waiters) wake();
  }

  /** Awaits `p` unless `signal` aborts first. @throws ABORTED */
  async #wait(p: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
    if (signal === undefined) return p;
    let onAbort!: () => void;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new AbortError('Connection.write aborted', { cause: signal.reason }));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([p, aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}
