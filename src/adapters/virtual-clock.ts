import { DrkitError } from '../core/errors.js';
import { assertNonNegativeInteger } from '../core/validate.js';
import type { Clock, TimerHandle } from './clock.js';
import { sleepOn } from './system-clock.js';

interface VirtualTimer {
  readonly dueMs: number;
  readonly seq: number;
  readonly callback: () => void;
  cancelled: boolean;
}

/**
 * A deterministic clock for simulation. Time moves only when {@link VirtualClock.advance}
 * or {@link VirtualClock.runUntil} is called; timers fire in due-time order (ties in
 * creation order), each with `now()` equal to its due time, and microtasks queued by a
 * callback (promise continuations) run before the next timer fires.
 */
export class VirtualClock implements Clock {
  #nowMs: number;
  #seq = 0;
  #timers: VirtualTimer[] = [];

  /** @param startMs initial time, ms since the epoch. @defaultValue 0 */
  constructor(startMs = 0) {
    assertNonNegativeInteger(startMs, 'startMs');
    this.#nowMs = startMs;
  }

  now(): number {
    return this.#nowMs;
  }

  /** Number of pending (not cancelled, not fired) timers. */
  get pendingTimerCount(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /** @throws INVALID_ARGUMENT for a negative or non-integer delay */
  setTimer(delayMs: number, callback: () => void): TimerHandle {
    assertNonNegativeInteger(delayMs, 'delayMs');
    const timer: VirtualTimer = { dueMs: this.#nowMs + delayMs, seq: this.#seq++, callback, cancelled: false };
    // Keep the array sorted by (dueMs, seq); insertion from the back is cheap for the
    // common case of timers scheduled in increasing order.
    let i = this.#timers.length;
    while (i > 0) {
      const prev = this.#timers[i - 1]!;
      if (prev.dueMs < timer.dueMs || (prev.dueMs === timer.dueMs && prev.seq < timer.seq)) break;
      i--;
    }
    this.#timers.splice(i, 0, timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  /** @throws ABORTED when `signal` aborts before the delay passes */
  sleep(delayMs: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    return sleepOn(this, delayMs, options.signal);
  }

  /** Advances time by `deltaMs`, firing every timer due on the way. */
  async advance(deltaMs: number): Promise<void> {
    assertNonNegativeInteger(deltaMs, 'deltaMs');
    await this.runUntil(this.#nowMs + deltaMs);
  }

  /**
   * Advances time to `targetMs`, firing due timers in order; timers created by callbacks
   * that fall due before `targetMs` fire too.
   * @throws INVALID_ARGUMENT when `targetMs` is in the past
   */
  async runUntil(targetMs: number): Promise<void> {
    assertNonNegativeInteger(targetMs, 'targetMs');
    if (targetMs < this.#nowMs) {
      throw new DrkitError('INVALID_ARGUMENT', `cannot move a VirtualClock backwards (${targetMs} < ${this.#nowMs})`, {
        data: { targetMs, nowMs: this.#nowMs },
      });
    }
    for (;;) {
      await settle();
      const next = this.#timers[0];
      if (next === undefined || next.dueMs > targetMs) break;
      this.#timers.shift();
      if (next.cancelled) continue;
      this.#nowMs = next.dueMs;
      next.callback();
    }
    this.#nowMs = targetMs;
    await settle();
  }
}

/** Lets pending promise continuations run (several macrotask-free turns). */
async function settle(): Promise<void> {
  const SETTLE_TURNS = 20; // deep enough for typical await chains between timers
  for (let i = 0; i < SETTLE_TURNS; i++) await Promise.resolve();
  // One macrotask turn, for continuations scheduled with setImmediate (streams, fs).
  await new Promise<void>((resolve) => setImmediate(resolve));
  for (let i = 0; i < SETTLE_TURNS; i++) await Promise.resolve();
}
