/**
 * ReceivePool: the buffers a plain TCP client socket reads into (node's `onread` option),
 * reused once the consumer is done with them.
 *
 * Why: node's default socket reads allocate a fresh 64 KiB buffer per read. Those come
 * from glibc's brk heap (below its mmap threshold) and die whenever V8 collects them, out
 * of order, so a process that receives a GiB keeps tens of MiB of fragmented heap and
 * spends CPU allocating and collecting them (issue #13: a restoring process's `[heap]`
 * was 50 MiB of its 159 MiB peak; a 1 GiB loopback read costs 1.2 s of CPU with 'data'
 * events against 0.85 s reading into reused buffers, measured 2026-12-03).
 *
 * Ownership: every read gets a whole slot of {@link RECEIVE_SLOT_BYTES}; the views made
 * of it (record payloads) are counted. A slot comes back to the free list only when the
 * read that filled it is over and every view of it was released — which happens only in
 * reuse mode ({@link ReceivePool.setReuse}: the consumer promised not to reference a chunk
 * once it asks for the next). Without that promise a filled slot is forgotten, never
 * reused: each read then gets fresh memory, exactly what node's default does.
 */

/** Bytes of one receive slot: node's own read size for TCP. */
export const RECEIVE_SLOT_BYTES = 64 * 1024;

interface Slot {
  readonly bytes: Uint8Array;
  /** Views of this slot handed on and not yet released. */
  refs: number;
  /** A read into it is under way (given out by `take()`, not yet `filled()`). */
  filling: boolean;
}

/** See the module comment. */
export class ReceivePool {
  readonly #maxFreeSlots: number;
  readonly #free: Slot[] = [];
  /** Slots that may still come back: being filled, or holding views not yet released (reuse mode). */
  readonly #tracked = new Map<ArrayBufferLike, Slot>();
  #reuse = false;
  #slotsAllocated = 0;

  /** @param maxFreeSlots empty slots kept for reuse; more are left to the GC */
  constructor(maxFreeSlots: number) {
    this.#maxFreeSlots = maxFreeSlots;
  }

  /** Slots allocated so far (what tests of the bound read). */
  get slotsAllocated(): number {
    return this.#slotsAllocated;
  }

  /**
   * Whether released views return their slot. Turning reuse off forgets every slot with
   * views outstanding (their memory stays the consumer's).
   */
  setReuse(reuse: boolean): void {
    this.#reuse = reuse;
    if (!reuse) for (const [key, slot] of this.#tracked) if (slot.refs > 0) this.#tracked.delete(key);
  }

  /** The buffer for the next read (node's `onread.buffer` generator). */
  take(): Uint8Array {
    let slot = this.#free.pop();
    if (slot === undefined) {
      slot = { bytes: new Uint8Array(RECEIVE_SLOT_BYTES), refs: 0, filling: false };
      this.#slotsAllocated++;
    }
    slot.filling = true;
    this.#tracked.set(slot.bytes.buffer, slot);
    return slot.bytes;
  }

  /** One more view of `chunk`'s slot was handed on. */
  retain(chunk: Uint8Array): void {
    const slot = this.#tracked.get(chunk.buffer);
    if (slot !== undefined) slot.refs++;
  }

  /** The read into `bytes` (a buffer `take()` gave) is over and its views were retained. */
  filled(bytes: Uint8Array): void {
    const slot = this.#tracked.get(bytes.buffer);
    if (slot === undefined) return;
    slot.filling = false;
    this.#settle(slot);
  }

  /** A view retained earlier is no longer referenced (reuse mode), or was dropped unread. */
  release(chunk: Uint8Array): void {
    const slot = this.#tracked.get(chunk.buffer);
    if (slot === undefined || slot.refs === 0) return;
    slot.refs--;
    this.#settle(slot);
  }

  /** Forgets every slot (the connection is gone). */
  clear(): void {
    this.#tracked.clear();
    this.#free.length = 0;
  }

  #settle(slot: Slot): void {
    if (slot.filling) return;
    if (slot.refs > 0 && this.#reuse) return;
    this.#tracked.delete(slot.bytes.buffer);
    if (slot.refs === 0 && this.#free.length < this.#maxFreeSlots) this.#free.push(slot);
  }
}
