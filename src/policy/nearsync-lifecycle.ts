/**
 * The NearSync lifecycle of one protection domain towards one remote site, as the seed
 * describes it (section NearSync), as pure data and one pure transition function: the
 * engine that runs NearSync feeds it what happened (a seed snapshot finished replicating,
 * light-weight snapshots were acknowledged, time passed) and executes the actions it
 * returns (take a seed, start or stop LWS shipping). The state is JSON, so the engine
 * persists it with every transition and a restart resumes where it was.
 *
 * The rules:
 * - `seeding`: a seed (a full snapshot) is replicating. One that completes in less than
 *   the threshold (60 minutes) starts the second seed at once, together with LWS
 *   shipping (`second-seed`); a slower one starts another seed ("the first or n later").
 * - `second-seed`: when the second seed completes, every LWS already replicated becomes
 *   valid: `stable`.
 * - `stable`: LWS are shipped continuously; the target composes full snapshots from them.
 * - Whenever LWS are shipping (`second-seed`, `stable`) and the oldest LWS not yet
 *   acknowledged by the target is older than the threshold, the system falls back to full
 *   snapshots (`fallback`): LWS shipping stops and a full snapshot is taken.
 * - `fallback`: like `seeding` — a full snapshot completing within the threshold starts
 *   another one at once and LWS shipping (`second-seed` again, the re-seed).
 * Every transition carries its reason.
 */
import { DrkitError } from '../core/errors.js';

/** Default threshold of the seed: 60 minutes, for seed durations and for LWS lag. */
export const NEARSYNC_DEFAULT_THRESHOLD_MS = 60 * 60 * 1000;

/** Lifecycle states. */
export type NearSyncPhase = 'seeding' | 'second-seed' | 'stable' | 'fallback';

/** The durable state of one (protection domain, remote site) pair. */
export interface NearSyncState {
  readonly kind: 'nearsync-state';
  readonly phase: NearSyncPhase;
  /** When the seed (or full snapshot) now replicating started, ms since the epoch. */
  readonly seedStartedMs: number;
  /** Sequence number of the first LWS that the second seed makes valid, once LWS ship. */
  readonly lwsFromSeq?: number;
  /** LWS taken and not yet acknowledged by the target: sequence number -> time taken (ms). */
  readonly unacked: readonly (readonly [number, number])[];
  /** Highest LWS sequence number the target acknowledged. */
  readonly ackedSeq?: number;
  /** Highest valid (restorable at the target) LWS sequence number. */
  readonly validSeq?: number;
}

/** What happened. */
export type NearSyncEvent =
  | { readonly kind: 'seed-completed'; readonly nowMs: number }
  | { readonly kind: 'seed-failed'; readonly nowMs: number; readonly reason: string }
  | { readonly kind: 'lws-taken'; readonly nowMs: number; readonly seq: number }
  | { readonly kind: 'lws-acked'; readonly nowMs: number; readonly seq: number }
  /** The source can no longer ship the chain (its write-log hold was dropped at the bound, or a restore changed a volume without log records). */
  | { readonly kind: 'lws-lost'; readonly nowMs: number; readonly reason: string }
  | { readonly kind: 'tick'; readonly nowMs: number };

/** What the engine must do. */
export type NearSyncAction =
  | { readonly kind: 'take-seed' }
  /** Start shipping LWS from the next marker (its sequence number is told back with `lws-taken`). */
  | { readonly kind: 'start-lws' }
  | { readonly kind: 'stop-lws' }
  /** LWS up to `seq` are valid restore points at the target. */
  | { readonly kind: 'lws-valid'; readonly seq: number };

/** One phase change and why. */
export interface NearSyncTransition {
  readonly from: NearSyncPhase;
  readonly to: NearSyncPhase;
  readonly atMs: number;
  readonly reason: string;
}

/** Result of {@link nearSyncStep}. */
export interface NearSyncStep {
  readonly state: NearSyncState;
  readonly actions: readonly NearSyncAction[];
  readonly transitions: readonly NearSyncTransition[];
}

/** Options of the lifecycle. */
export interface NearSyncLifecycleOptions {
  /** Seed duration and LWS lag threshold. @defaultValue {@link NEARSYNC_DEFAULT_THRESHOLD_MS} */
  readonly thresholdMs?: number;
}

/** The state when NearSync is enabled, and the first action (take the initial seed). */
export function startNearSync(nowMs: number): NearSyncStep {
  checkTime(nowMs);
  const state: NearSyncState = { kind: 'nearsync-state', phase: 'seeding', seedStartedMs: nowMs, unacked: [] };
  return { state, actions: [{ kind: 'take-seed' }], transitions: [] };
}

/**
 * The next state after `event`, the actions to execute and the transitions made.
 * @throws INVALID_ARGUMENT for a malformed event, time going backwards, or an LWS event
 *   while LWS are not shipping
 */
export function nearSyncStep(state: NearSyncState, event: NearSyncEvent, options: NearSyncLifecycleOptions = {}): NearSyncStep {
  const thresholdMs = options.thresholdMs ?? NEARSYNC_DEFAULT_THRESHOLD_MS;
  if (!Number.isSafeInteger(thresholdMs) || thresholdMs <= 0) throw new DrkitError('INVALID_ARGUMENT', 'thresholdMs must be a positive integer');
  checkTime(event.nowMs);
  if (event.nowMs < state.seedStartedMs) throw new DrkitError('INVALID_ARGUMENT', 'event time is before the seed started', { data: { nowMs: event.nowMs, seedStartedMs: state.seedStartedMs } });
  const shipping = state.phase === 'second-seed' || state.phase === 'stable';
  const actions: NearSyncAction[] = [];
  const transitions: NearSyncTransition[] = [];
  let next = state;
  const go = (phase: NearSyncPhase, reason: string, patch: Partial<NearSyncState> = {}) => {
    transitions.push({ from: next.phase, to: phase, atMs: event.nowMs, reason });
    next = { ...next, ...patch, phase };
  };
  switch (event.kind) {
    case 'seed-completed': {
      const tookMs = event.nowMs - state.seedStartedMs;
      if (state.phase === 'seeding' || state.phase === 'fallback') {
        if (tookMs < thresholdMs) {
          go('second-seed', `${state.phase === 'seeding' ? 'seed' : 'full snapshot'} replicated in ${tookMs} ms (< ${thresholdMs}): second seed and LWS shipping start`, { seedStartedMs: event.nowMs, unacked: [], lwsFromSeq: undefined });
          actions.push({ kind: 'take-seed' }, { kind: 'start-lws' });
        } else {
          next = { ...next, seedStartedMs: event.nowMs };
          actions.push({ kind: 'take-seed' }); // too slow: another seed, same phase
        }
      } else if (state.phase === 'second-seed') {
        go('stable', `second seed replicated in ${tookMs} ms: the LWS replicated so far are valid`);
        if (state.ackedSeq !== undefined && (state.lwsFromSeq === undefined || state.ackedSeq >= state.lwsFromSeq)) {
          next = { ...next, validSeq: state.ackedSeq };
          actions.push({ kind: 'lws-valid', seq: state.ackedSeq });
        }
      }
      break;
    }
    case 'seed-failed':
      // A failed seed is retried at once; the phase (and so what it leads to) is unchanged.
      next = { ...next, seedStartedMs: event.nowMs };
      actions.push({ kind: 'take-seed' });
      break;
    case 'lws-taken': {
      if (!shipping) throw new DrkitError('INVALID_ARGUMENT', `an LWS was taken while NearSync is ${state.phase}`);
      checkSeq(event.seq, state.unacked.at(-1)?.[0]);
      next = { ...next, unacked: [...state.unacked, [event.seq, event.nowMs]], lwsFromSeq: state.lwsFromSeq ?? event.seq };
      break;
    }
    case 'lws-acked': {
      if (!shipping) break; // a late acknowledgement after a fallback changes nothing
      checkSeq(event.seq, undefined);
      const unacked = state.unacked.filter(([seq]) => seq > event.seq);
      next = { ...next, unacked, ackedSeq: Math.max(state.ackedSeq ?? 0, event.seq) };
      if (state.phase === 'stable') {
        next = { ...next, validSeq: next.ackedSeq };
        actions.push({ kind: 'lws-valid', seq: next.ackedSeq! });
      }
      break;
    }
    case 'lws-lost':
      if (shipping) {
        go('fallback', `LWS chain lost (${event.reason}): back to full snapshots`, { seedStartedMs: event.nowMs, unacked: [], lwsFromSeq: undefined });
        actions.push({ kind: 'stop-lws' }, { kind: 'take-seed' });
        return { state: Object.freeze(next), actions, transitions };
      }
      break;
    case 'tick':
      break;
    default:
      throw new DrkitError('INVALID_ARGUMENT', `unknown NearSync event ${(event as { kind: unknown }).kind}`);
  }
  // LWS lag: the oldest LWS the target has not acknowledged.
  const oldest = next.unacked[0];
  if ((next.phase === 'second-seed' || next.phase === 'stable') && oldest !== undefined && event.nowMs - oldest[1] > thresholdMs) {
    go('fallback', `LWS ${oldest[0]} unacknowledged for ${event.nowMs - oldest[1]} ms (> ${thresholdMs}): back to full snapshots`, { seedStartedMs: event.nowMs, unacked: [], lwsFromSeq: undefined });
    actions.push({ kind: 'stop-lws' }, { kind: 'take-seed' });
  }
  return { state: Object.freeze(next), actions, transitions };
}

function checkTime(nowMs: number): void {
  if (!Number.isSafeInteger(nowMs) || nowMs < 0) throw new DrkitError('INVALID_ARGUMENT', 'nowMs must be a non-negative integer', { data: { nowMs } });
}

function checkSeq(seq: number, after: number | undefined): void {
  if (!Number.isSafeInteger(seq) || seq < 0 || (after !== undefined && seq <= after)) {
    throw new DrkitError('INVALID_ARGUMENT', 'LWS sequence numbers must be integers that increase', { data: { seq, after } });
  }
}
