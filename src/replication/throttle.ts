/**
 * A token-bucket bandwidth limit on an injected clock: `take(n)` waits until n more
 * bytes fit under `bytesPerSec`, with at most one second of burst.
 */
import { assertPositiveInteger } from '../core/validate.js';
import type { Clock } from '../adapters/clock.js';

/** Bandwidth limiter. */
export class Throttle {
  /** The rate. */
  readonly bytesPerSec: number;
  readonly #bytesPerSec: number;
  readonly #clock: Clock;
  #tokens: number;
  #lastMs: number;

  /** @throws INVALID_ARGUMENT for a non-positive rate */
  constructor(bytesPerSec: number, clock: Clock) {
    assertPositiveInteger(bytesPerSec, 'bandwidthBytesPerSec');
    this.#bytesPerSec = bytesPerSec;
    this.bytesPerSec = bytesPerSec;
    this.#clock = clock;
    this.#tokens = bytesPerSec;
    this.#lastMs = clock.now();
  }

  /** Waits until `byteCount` bytes may be sent. @throws ABORTED */
  async take(byteCount: number, signal?: AbortSignal): Promise<void> {
    this.#refill();
    this.#tokens -= byteCount;
    if (this.#tokens >= 0) return;
    const waitMs = Math.ceil((-this.#tokens / this.#bytesPerSec) * 1000);
    await this.#clock.sleep(waitMs, signal === undefined ? {} : { signal });
    this.#refill();
  }

  #refill(): void {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#bytesPerSec, this.#tokens + ((now - this.#lastMs) / 1000) * this.#bytesPerSec);
    this.#lastMs = now;
  }
}
