/**
 * Application quiesce hooks (the seed's VSS-style pre-freeze / post-thaw scripts) run
 * around a consistency-group snapshot's metadata commit.
 */
import { DrkitError } from '../core/errors.js';
import type { Clock, TimerHandle } from '../adapters/clock.js';

/** User hooks that make an application consistent on disk for a moment. */
export interface QuiesceHooks {
  /** Flush and freeze the application; must resolve within the timeout. */
  preFreeze(options: { signal: AbortSignal }): Promise<void>;
  /** Resume the application. Always called once preFreeze was started, whatever happened. */
  postThaw(): Promise<void>;
}

/** Outcome of the pre-freeze phase. */
export type FreezeOutcome = { readonly frozen: true } | { readonly frozen: false; readonly reason: string };

/**
 * Runs `preFreeze` with a deadline. Never throws: a failure or a timeout is reported as
 * `{ frozen: false, reason }`, and the snapshot then falls back to crash consistency.
 * The deadline runs on the tree's clock, so simulations control it.
 */
export async function runPreFreeze(hooks: QuiesceHooks, timeoutMs: number, clock: Clock): Promise<FreezeOutcome> {
  const ac = new AbortController();
  let timer: TimerHandle | undefined;
  const deadline = new Promise<FreezeOutcome>((resolve) => {
    timer = clock.setTimer(timeoutMs, () => {
      ac.abort(new DrkitError('TIMEOUT', `preFreeze did not finish within ${timeoutMs} ms`, { data: { timeoutMs } }));
      resolve({ frozen: false, reason: `preFreeze timed out after ${timeoutMs} ms` });
    });
  });
  const attempt = hooks.preFreeze({ signal: ac.signal }).then(
    (): FreezeOutcome => ({ frozen: true }),
    (err: unknown): FreezeOutcome => ({ frozen: false, reason: `preFreeze failed: ${(err as Error)?.message ?? String(err)}` }),
  );
  try {
    return await Promise.race([attempt, deadline]);
  } finally {
    timer?.cancel();
  }
}

/** Runs `postThaw`, reporting (not throwing) its failure. */
export async function runPostThaw(hooks: QuiesceHooks): Promise<string | undefined> {
  try {
    await hooks.postThaw();
    return undefined;
  } catch (err) {
    return `postThaw failed: ${(err as Error)?.message ?? String(err)}`;
  }
}
