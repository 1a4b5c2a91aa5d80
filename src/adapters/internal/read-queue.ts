/**
 * The receive side of a Connection: a queue of received chunks consumed once as an
 * AsyncIterable. The producer (a socket's 'data' events, an in-memory peer's writes)
 * watches `bufferedBytes` and the `onConsumed` hook to apply backpressure; the queue
 * itself never refuses a chunk, so its bound is whatever the producer enforces.
 */
import { DrkitError } from '../../core/errors.js';

/** Hooks of a {@link ReadQueue}. */
export interface ReadQueueHooks {
  /** Called after the consumer took bytes out (or stopped reading): producers may resume. */
  onConsumed?: () => void;
  /**
   * Called once for a chunk nobody references any longer: dropped unread (closed queue,
   * discard), or, when iterated with `reuseChunks`, handed out and then left behind by the
   * consumer asking for the next one. Producers that reuse memory (a receive pool) free
   * the chunk's memory here.
   */
  onReleased?: (chunk: Uint8Array) => void;
}

/** Options of {@link ReadQueue.iterate}, as `Connection.read` takes them. */
export interface ReadQueueIterateOptions {
  /** The consumer keeps no reference to a chunk once it asks for the next (see Connection.read). */
  readonly reuseChunks?: boolean;
}

/** Chunks waiting for one consumer, ending cleanly or with an error. */
export class ReadQueue {
  readonly #chunks: Uint8Array[] = [];
  /** Index of the next chunk to hand out; compacted lazily so shift() stays O(1). */
  #head = 0;
  #bufferedBytes = 0;
  #ended = false;
  #failure: Error | undefined;
  /** The consumer left the loop: later chunks are dropped, not kept. */
  #discarding = false;
  #iterated = false;
  #reuseChunks = false;
  /** With `reuseChunks`: the chunk last handed out, released at the next `next()`. */
  #handed: Uint8Array | undefined;
  #wake: (() => void) | undefined;
  readonly #hooks: ReadQueueHooks;

  constructor(hooks: ReadQueueHooks = {}) {
    this.#hooks = hooks;
  }

  /** Bytes received and not yet handed to the consumer. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /** True once no more chunks will be accepted (ended, failed, or consumer gone). */
  get closed(): boolean {
    return this.#ended || this.#failure !== undefined || this.#discarding;
  }

  /** Appends a received chunk; dropped when the queue is closed. */
  push(chunk: Uint8Array): void {
    if (this.closed || chunk.byteLength === 0) {
      this.#hooks.onReleased?.(chunk);
      return;
    }
    this.#chunks.push(chunk);
    this.#bufferedBytes += chunk.byteLength;
    this.#notify();
  }

  /** Marks the clean end of the stream: the consumer gets what is queued, then done. */
  end(): void {
    if (this.closed) return;
    this.#ended = true;
    this.#notify();
  }

  /**
   * Fails the stream. With `discard`, queued chunks are dropped and the consumer gets
   * the error at once (a local teardown); without, it first gets what already arrived.
   */
  fail(error: Error, discard: boolean): void {
    // After a clean end the consumer is owed the queued bytes and then done; only a
    // local teardown (discard) still cuts it short.
    if (this.#failure !== undefined || (this.#ended && !discard)) return;
    this.#failure = error;
    if (discard) this.#clear();
    this.#notify();
  }

  /**
   * The single consumer's iteration.
   * @throws INVALID_ARGUMENT when iterated a second time
   */
  iterate(options: ReadQueueIterateOptions = {}): AsyncIterable<Uint8Array> {
    if (this.#iterated) {
      throw new DrkitError('INVALID_ARGUMENT', 'Connection.read(): a connection can be read only once');
    }
    this.#iterated = true;
    this.#reuseChunks = options.reuseChunks === true;
    return { [Symbol.asyncIterator]: () => this.#iterator() };
  }

  #iterator(): AsyncIterator<Uint8Array> {
    return {
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        this.#releaseHanded();
        for (;;) {
          if (this.#head < this.#chunks.length) {
            const chunk = this.#chunks[this.#head] as Uint8Array;
            this.#chunks[this.#head++] = EMPTY;
            if (this.#head > COMPACT_AFTER_CHUNKS && this.#head * 2 > this.#chunks.length) {
              this.#chunks.splice(0, this.#head);
              this.#head = 0;
            }
            this.#bufferedBytes -= chunk.byteLength;
            if (this.#reuseChunks) this.#handed = chunk;
            this.#hooks.onConsumed?.();
            return { done: false, value: chunk };
          }
          if (this.#failure !== undefined) throw this.#failure;
          if (this.#ended || this.#discarding) return { done: true, value: undefined };
          await new Promise<void>((resolve) => (this.#wake = resolve));
        }
      },
      return: async (): Promise<IteratorResult<Uint8Array>> => {
        // The consumer broke out of its loop: drop what is queued and what comes later,
        // so a peer that keeps writing is never blocked by bytes nobody will read.
        this.#discarding = true;
        this.#releaseHanded();
        this.#clear();
        this.#hooks.onConsumed?.();
        return { done: true, value: undefined };
      },
    };
  }

  #releaseHanded(): void {
    const handed = this.#handed;
    this.#handed = undefined;
    if (handed !== undefined) this.#hooks.onReleased?.(handed);
  }

  #clear(): void {
    const released = this.#hooks.onReleased;
    if (released !== undefined) for (let i = this.#head; i < this.#chunks.length; i++) released(this.#chunks[i] as Uint8Array);
    this.#chunks.length = 0;
    this.#head = 0;
    this.#bufferedBytes = 0;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

const EMPTY = new Uint8Array(0);

/** Consumed slots kept before compaction: amortises the splice over many chunks. */
const COMPACT_AFTER_CHUNKS = 64;
