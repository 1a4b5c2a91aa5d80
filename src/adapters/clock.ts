/**
 * The Clock contract. All of drkit's notion of time goes through one, so that a
 * simulated year of schedules runs in seconds under a VirtualClock.
 */

/** A cancellable timer handle. */
export interface TimerHandle {
  cancel(): void;
}

/** A source of time and timers. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Calls `callback` once, `delayMs` from now. */
  setTimer(delayMs: number, callback: () => void): TimerHandle;
  /** Resolves after `delayMs`; rejects with AbortError when `signal` aborts. */
  sleep(delayMs: number, options?: { signal?: AbortSignal }): Promise<void>;
}
