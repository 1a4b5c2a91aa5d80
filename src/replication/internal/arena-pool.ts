/**
 * ArenaPool: the buffers a sender compresses extents into, one per extents call being
 * built, handed back when the call is answered and reused by the next.
 *
 * Why: compressing each extent into a buffer of its own allocated ~526 MB of short-lived
 * ArrayBuffers per GiB replicated, and V8 frees external memory only at mark-compact
 * collections, which that churn then triggers (docs/benchmarks.md, issue #13). The
 * sender flushes a call before compressing an extent whose worst case would not fit in
 * what is left of its arena, so a call of compressible extents carries up to
 * {@link ARENA_BYTES} of them (raw extents are views of the store's reads, not copied).
 *
 * Memory bound: a sender builds at most PIPELINE_BATCHES calls at once, so at most that
 * many arenas are out; at most {@link MAX_FREE_ARENAS} are kept when idle.
 */

/** Bytes of one arena (2 MiB): a call is flushed early when the next extent might not fit, so calls of compressible data are ~2 MiB. */
export const ARENA_BYTES = 2 * 1024 * 1024;
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
