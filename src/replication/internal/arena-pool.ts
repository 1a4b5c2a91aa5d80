/**
 * ArenaPool: the buffers a sender compresses extents into, one per extents call being
 * built, handed back when the call is answered and reused by the next.
 *
 * Why: compressing each extent into a buffer of its own allocated ~526 MB of short-lived
 * ArrayBuffers per GiB replicated, and V8 frees external memory only at mark-compact
 * collections, which that churn then triggers (docs/benchmarks.md, issue #13). An arena
 * is {@link ARENA_BYTES}: one call's worth plus the largest compressed extent that may
 * be kept, so an extent compressed past the call's end still fits before the flush.
 *
 * Memory bound: a sender builds at most PIPELINE_BATCHES calls at once, so at most that
 * many arenas are out; at most {@link MAX_FREE_ARENAS} are kept when idle.
 */

/** Bytes of one arena: a 4 MiB extents call plus 1 MiB, the largest block a volume may have. */
export const ARENA_BYTES = 5 * 1024 * 1024;
/** Idle arenas kept for reuse (the sender's pipeline depth). */
export const MAX_FREE_ARENAS = 4;

/** A free list of equal-sized buffers. */
export class ArenaPool {
  readonly #free: Uint8Array[] = [];
  #allocated = 0;

  /** @param arenaBytes - size of each arena @param maxFree - arenas kept when given back */
  constructor(
    readonly arenaBytes: number = ARENA_BYTES,
    readonly maxFree: number = MAX_FREE_ARENAS,
  ) {}

  /** Arenas allocated so far (a test's and a memory budget's figure). */
  get allocated(): number {
    return this.#allocated;
  }

  /** A free arena, or a new one. */
  take(): Uint8Array {
    const free = this.#free.pop();
    if (free !== undefined) return free;
    this.#allocated++;
    return new Uint8Array(this.arenaBytes);
  }

  /** Returns an arena nothing refers to any longer. */
  give(arena: Uint8Array): void {
    if (this.#free.length < this.maxFree && arena.byteLength === this.arenaBytes) this.#free.push(arena);
  }
}
