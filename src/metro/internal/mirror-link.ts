/**
 * MirrorLink: the active side's end of an attached Metro connection. It sends writes and
 * flush barriers in order (one sequence of numbers per connection) and resolves each when
 * the peer acknowledges it: METRO_ACK (cumulative) for writes, the peer's METRO_FLUSH echo
 * for barriers.
 *
 * Fault-model promise: a peer that stays silent for `peerTimeoutMs` (no ack, no ping
 * answer) or a broken connection fails the link once: every pending write and barrier
 * rejects with that error, the connection is destroyed and `onLost` runs. Nothing is
 * acknowledged by the link that the peer did not acknowledge.
 */
import type { Clock, TimerHandle } from '../../adapters/clock.js';
import { DrkitError, toDrkitError } from '../../core/errors.js';
import type { HandshakeResult } from '../../replication/internal/handshake.js';
import { decodeSeq, readMetro, writeSeqFrame, writeWriteFrame } from './metro-messages.js';

interface Waiter {
  readonly seq: number;
  resolve(): void;
  reject(err: unknown): void;
}

/** Sends mirrored writes and barriers; resolves them on the peer's acknowledgements. */
export class MirrorLink {
  readonly #session: HandshakeResult;
  readonly #destroy: () => void;
  readonly #onLost: (err: DrkitError) => void;
  readonly #writes: Waiter[] = [];
  readonly #flushes: Waiter[] = [];
  readonly #ping: TimerHandle;
  #seq = 0;
  #failure: DrkitError | undefined;

  constructor(session: HandshakeResult, destroy: () => void, clock: Clock, peerTimeoutMs: number, onLost: (err: DrkitError) => void) {
    this.#session = session;
    this.#destroy = destroy;
    this.#onLost = onLost;
    // Pings at a quarter of the timeout keep an idle link provably alive; the reader's idle timeout catches silence.
    const every = Math.max(1, Math.floor(peerTimeoutMs / 4));
    const tick = (): TimerHandle =>
      clock.setTimer(every, () => {
        if (this.#failure !== undefined) return;
        writeSeqFrame(session.writer, 'METRO_PING', this.#seq).catch((err) => this.fail(err));
        this.#pingTimer = tick();
      });
    this.#pingTimer = tick();
    this.#ping = { cancel: () => this.#pingTimer.cancel() };
    void this.#readLoop();
  }

  #pingTimer: TimerHandle;

  /** Whether the link failed. */
  get failed(): boolean {
    return this.#failure !== undefined;
  }

  /** Sequence number of the last write or barrier sent. */
  get lastSeq(): number {
    return this.#seq;
  }

  /** Sends one write; resolves on the peer's ack. @throws the link's failure */
  write(byteOffset: number, data: Uint8Array): { seq: number; acked: Promise<void> } {
    const seq = ++this.#seq;
    const acked = this.#wait(this.#writes, seq);
    writeWriteFrame(this.#session.writer, seq, byteOffset, data).catch((err) => this.fail(err));
    return { seq, acked };
  }

  /** Sends a flush barrier; resolves once the peer made everything before it durable. */
  flush(): { seq: number; done: Promise<void> } {
    const seq = ++this.#seq;
    const done = this.#wait(this.#flushes, seq);
    writeSeqFrame(this.#session.writer, 'METRO_FLUSH', seq).catch((err) => this.fail(err));
    return { seq, done };
  }

  /** Fails the link (idempotent). */
  fail(err: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = toDrkitError(err, 'CONNECTION_LOST', 'the Metro link failed');
    this.#ping.cancel();
    this.#destroy();
    for (const w of [...this.#writes.splice(0), ...this.#flushes.splice(0)]) w.reject(this.#failure);
    this.#onLost(this.#failure);
  }

  #wait(list: Waiter[], seq: number): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise<void>((resolve, reject) => list.push({ seq, resolve, reject }));
  }

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        const frame = await readMetro(this.#session.reader);
        if (frame === undefined) throw new DrkitError('CONNECTION_LOST', 'the Metro peer closed the connection');
        if (frame.name === 'METRO_PING') continue;
        if (frame.name !== 'METRO_ACK' && frame.name !== 'METRO_FLUSH') throw new DrkitError('PROTOCOL_ERROR', `unexpected ${frame.name} on a mirrored link`);
        const seq = decodeSeq(frame);
        if (seq > this.#seq) throw new DrkitError('PROTOCOL_ERROR', `peer acknowledged ${seq}, beyond the last sent ${this.#seq}`);
        const list = frame.name === 'METRO_ACK' ? this.#writes : this.#flushes;
        while (list.length > 0 && list[0]!.seq <= seq) list.shift()!.resolve();
      }
    } catch (err) {
      this.fail(err);
    }
  }
}
