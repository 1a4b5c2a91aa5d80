/**
 * Drives a VirtualClock from the real event loop for code that cannot call `advance`
 * itself (a conformance suite, a replication session awaited end to end): whenever the
 * process has run out of promise continuations and immediates, time jumps to the next
 * network event. See `SimulatedNetwork.autoAdvance` for the contract.
 */
import type { VirtualClock } from '../../adapters/virtual-clock.js';

/** What the advancer needs to know about the network's own timers. */
export interface AutoAdvanceSource {
  readonly clock: VirtualClock;
  /** Due time of the network's earliest pending timer, if any. */
  nextDueMs(): number | undefined;
  /** Number of the network's pending timers (the rest of `clock.pendingTimerCount` is foreign). */
  pendingCount(): number;
  /** Registers the callback run whenever the network schedules a timer (undefined unregisters). */
  onSchedule(callback: (() => void) | undefined): void;
}

/** A running auto-advance loop. */
export interface AutoAdvanceHandle {
  /** Stops advancing once the current step ends; rejects with the first error a timer callback threw. */
  stop(): Promise<void>;
}

/** How long (real ms) an idle advancer sleeps before looking for foreign timers again; short enough to be unnoticeable in a test. */
const IDLE_POLL_MS = 5;

/** Starts the loop; `idleStepMs` is how far time moves when only foreign timers are pending. */
export function startAutoAdvance(source: AutoAdvanceSource, idleStepMs: number): AutoAdvanceHandle {
  const clock = source.clock;
  let stopped = false;
  let firstError: unknown;
  let wake: (() => void) | undefined;
  const wakeUp = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  source.onSchedule(wakeUp);

  const waitForWork = (): Promise<void> =>
    new Promise<void>((resolve) => {
      // unref: an idle network must not keep the process alive on its own.
      const timer = setTimeout(() => {
        wake = undefined;
        resolve();
      }, IDLE_POLL_MS);
      timer.unref();
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const loop = async (): Promise<void> => {
    while (!stopped) {
      // One macrotask turn: every promise continuation queued so far has run, so the
      // code under test is blocked on the network (or on a timer) when time moves.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (stopped) break;
      const nowMs = clock.now();
      const dueMs = source.nextDueMs();
      let targetMs: number;
      if (dueMs !== undefined) targetMs = Math.max(dueMs, nowMs);
      else if (clock.pendingTimerCount > source.pendingCount()) targetMs = nowMs + idleStepMs;
      else {
        await waitForWork();
        continue;
      }
      try {
        await clock.runUntil(targetMs);
      } catch (err) {
        firstError ??= err;
      }
    }
  };
  const done = loop();

  return {
    async stop() {
      stopped = true;
      wakeUp();
      source.onSchedule(undefined);
      await done;
      if (firstError !== undefined) throw firstError;
    },
  };
}
