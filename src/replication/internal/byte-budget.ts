/**
 * ByteBudget: a FIFO counting semaphore over bytes, so concurrent tasks together hold at
 * most `capacityBytes`. A request larger than the whole budget waits until it is alone
 * and then takes all of it (it would never fit otherwise), so no request waits forever.
 */
export class ByteBudget {
  readonly capacityBytes: number;
  #heldBytes = 0;
  #peakHeldBytes = 0;
  readonly #waiters: { byteLength: number; wake: () => void }[] = [];

  constructor(capacityBytes: number) {
    this.capacityBytes = capacityBytes;
  }

  /** Bytes held now. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** The most bytes ever held at once. */
  get peakHeldBytes(): number {
    return this.#peakHeldBytes;
  }

  /** Waits for `byteLength` bytes (at most the capacity) and returns the amount to give back to {@link release}. */
  async acquire(byteLength: number): Promise<number> {
    const n = Math.min(byteLength, this.capacityBytes);
    if (this.#waiters.length > 0 || this.#heldBytes + n > this.capacityBytes) {
      await new Promise<void>((wake) => this.#waiters.push({ byteLength: n, wake }));
    } else this.#take(n);
    return n;
  }

  /** Gives back what {@link acquire} returned and wakes waiters in order while they fit. */
  release(byteLength: number): void {
    this.#heldBytes -= byteLength;
    while (this.#waiters.length > 0 && this.#heldBytes + this.#waiters[0]!.byteLength <= this.capacityBytes) {
      const w = this.#waiters.shift()!;
      this.#take(w.byteLength);
      w.wake();
    }
  }

  #take(n: number): void {
    this.#heldBytes += n;
    if (this.#heldBytes > this.#peakHeldBytes) this.#peakHeldBytes = this.#heldBytes;
  }
}
