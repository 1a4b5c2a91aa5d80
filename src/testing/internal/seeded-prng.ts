/**
 * mulberry32: a tiny seeded PRNG, so fault injectors, workloads and benches replay
 * exactly from their seed without depending on fast-check or Math.random. Exported from
 * `drkit/testing` as the one generator for test data.
 */
export class SeededPrng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, bound). */
  below(bound: number): number {
    return Math.floor(this.next() * bound);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }

  /** Fills `out` with pseudo-random bytes (4 per draw) and returns it. */
  fill(out: Uint8Array): Uint8Array {
    const whole = out.byteLength & ~3;
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    for (let i = 0; i < whole; i += 4) view.setUint32(i, (this.next() * 4294967296) >>> 0);
    for (let i = whole; i < out.byteLength; i++) out[i] = this.below(256);
    return out;
  }
}
