/**
 * Ordering of pipelined NBD requests on one connection. The promise: every request sees
 * the effect of every earlier request (in the order received) that it overlaps, and of
 * none after it — the result a strictly sequential server would give — while reads of
 * disjoint ranges run in parallel and replies go out as each finishes.
 *
 * - mutations (write, trim, write-zeroes) and flushes run one at a time in arrival order;
 *   a flush therefore follows every write received before it;
 * - a read waits for the earlier mutations it overlaps;
 * - a mutation also waits for the earlier reads it overlaps (so a read never sees a
 *   later write).
 * Ranges are widened to whole blocks of the export, the unit the volume rewrites.
 */

/** How a request touches the export. */
export type Access = 'read' | 'mutate' | 'barrier';

interface Pending {
  readonly access: Access;
  readonly startByte: number;
  readonly endByte: number;
  readonly done: Promise<void>;
}

/** Runs requests in the order the promise above needs. */
export class RequestScheduler {
  readonly #blockBytes: number;
  readonly #pending = new Set<Pending>();
  #lastMutation: Promise<void> = Promise.resolve();

  constructor(blockBytes: number) {
    this.#blockBytes = blockBytes;
  }

  /** Requests scheduled and not yet finished. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /**
   * Runs `run` once every earlier request it must follow has finished.
   * A barrier's range is ignored (it orders against mutations only).
   */
  schedule<T>(access: Access, byteOffset: number, byteLength: number, run: () => Promise<T>): Promise<T> {
    const startByte = Math.floor(byteOffset / this.#blockBytes) * this.#blockBytes;
    const endByte = access === 'barrier' ? startByte : Math.ceil((byteOffset + byteLength) / this.#blockBytes) * this.#blockBytes;
    const before: Promise<void>[] = [];
    for (const p of this.#pending) {
      const conflicting = access === 'read' ? p.access === 'mutate' : p.access === 'read' && access === 'mutate';
      if (conflicting && p.startByte < endByte && startByte < p.endByte) before.push(p.done);
    }
    if (access !== 'read') before.push(this.#lastMutation);
    let finish!: () => void;
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const entry: Pending = { access, startByte, endByte, done };
    this.#pending.add(entry);
    if (access !== 'read') this.#lastMutation = done;
    return Promise.all(before)
      .then(run)
      .finally(() => {
        this.#pending.delete(entry);
        finish();
      });
  }

  /** Resolves once every request scheduled so far has finished. */
  async idle(): Promise<void> {
    await Promise.all([...this.#pending].map((p) => p.done));
  }
}
