/**
 * Serialises async sections: each `run` starts once every earlier one settled. The
 * Protector holds one per protection domain, so a fire, a retention pass and a
 * replication's bookkeeping on the same domain never interleave between awaits.
 */
export class SerialLock {
  #tail: Promise<unknown> = Promise.resolve();

  /** Runs `fn` after every section queued before it; resolves or rejects with `fn`'s outcome. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}
