import { AbortError } from '../core/errors.js';
import { assertNonNegativeInteger } from '../core/validate.js';
import type { Clock, TimerHandle } from './clock.js';

/** The wall clock: `Date.now()` and Node/browser timers. */
export class SystemClock implements Clock {
  now(): number {
    return Date.now();
  }

  /** @throws INVALID_ARGUMENT for a negative or non-integer delay */
  setTimer(delayMs: number, callback: () => void): TimerHandle {
    assertNonNegativeInteger(delayMs, 'delayMs');
    const handle = setTimeout(callback, delayMs);
    return { cancel: () => clearTimeout(handle) };
  }

  /** @throws ABORTED when `signal` aborts before the delay passes */
  sleep(delayMs: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    return sleepOn(this, delayMs, options.signal);
  }
}

/** Shared sleep built on `clock.setTimer`, honouring an AbortSignal. */
export function sleepOn(clock: Clock, delayMs: number, signal?: AbortSignal): Promise<void> {
  assertNonNegativeInteger(delayMs, 'delayMs');
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortError('sleep aborted', { cause: signal.reason }));
      return;
    }
    const onAbort = () => {
      timer.cancel();
      reject(new AbortError('sleep aborted', { cause: signal?.reason }));
    };
    const timer = clock.setTimer(delayMs, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
