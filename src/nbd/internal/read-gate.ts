/**
 * A server-wide bound on device reads running at once. nbdcopy keeps 4 connections x 64
 * requests in flight; running all of them at once made the snapshot reads ~2x slower than
 * a few at a time (measured: 256 KiB reads of a 512 MiB snapshot at 1,399 MB/s with 4 in
 * flight, 640 MB/s with 64), as the extent reads queue behind each other and their
 * buffers all stay alive. Requests past the bound wait in arrival order.
 */
export class ReadGate {
  readonly #limit: number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Runs `fn` once fewer than the limit are running. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#limit) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#running++;
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next !== undefined) next(); // the slot passes straight to the next waiter
      else this.#running--;
    }
  }
}
