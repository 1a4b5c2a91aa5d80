// The NearSync lifecycle (issue #11, the seed's rules): seeding -> second seed -> stable
// -> fallback on LWS lag -> re-seed -> stable, with exact transition times, and a
// property over random event histories.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { NEARSYNC_DEFAULT_THRESHOLD_MS, nearSyncStep, startNearSync, type NearSyncEvent, type NearSyncState } from '../../src/policy/index.js';

const MIN = 60_000;

function run(events: NearSyncEvent[], startMs = 0) {
  let { state } = startNearSync(startMs);
  const log: { phase: string; atMs: number; reason: string }[] = [];
  const actions: string[] = [];
  for (const e of events) {
    const step = nearSyncStep(state, e);
    state = JSON.parse(JSON.stringify(step.state)) as NearSyncState; // durable: survives a restart as JSON
    for (const t of step.transitions) log.push({ phase: t.to, atMs: t.atMs, reason: t.reason });
    for (const a of step.actions) actions.push(a.kind === 'lws-valid' ? `lws-valid:${a.seq}` : a.kind);
  }
  return { state, log, actions };
}

describe('NearSync lifecycle', () => {
  it('seed, second seed, stable, a partition past the threshold falls back, then re-seeds to stable', () => {
    const events: NearSyncEvent[] = [
      { kind: 'seed-completed', nowMs: 10 * MIN },
      { kind: 'lws-taken', nowMs: 11 * MIN, seq: 5 },
      { kind: 'lws-acked', nowMs: 11 * MIN + 500, seq: 5 },
      { kind: 'seed-completed', nowMs: 20 * MIN }, // the second seed
      { kind: 'lws-taken', nowMs: 21 * MIN, seq: 9 },
      { kind: 'lws-acked', nowMs: 21 * MIN + 400, seq: 9 },
      { kind: 'lws-taken', nowMs: 30 * MIN, seq: 12 }, // the link goes down here
      { kind: 'lws-taken', nowMs: 31 * MIN, seq: 13 },
      { kind: 'tick', nowMs: 90 * MIN }, // 60 min exactly: not over the threshold yet
      { kind: 'tick', nowMs: 90 * MIN + 1 },
      { kind: 'lws-acked', nowMs: 91 * MIN, seq: 12 }, // late: changes nothing
      { kind: 'seed-completed', nowMs: 100 * MIN }, // full snapshot within 9 min: re-seed
      { kind: 'lws-taken', nowMs: 101 * MIN, seq: 20 },
      { kind: 'lws-acked', nowMs: 101 * MIN + 300, seq: 20 },
      { kind: 'seed-completed', nowMs: 110 * MIN },
    ];
    const { state, log, actions } = run(events);
    expect(log.map((t) => [t.phase, t.atMs / MIN])).toEqual([
      ['second-seed', 10],
      ['stable', 20],
      ['fallback', 90 + 1 / MIN],
      ['second-seed', 100],
      ['stable', 110],
    ]);
    expect(log[2]!.reason).toMatch(/LWS 12 unacknowledged/);
    expect(actions).toEqual(['take-seed', 'start-lws', 'lws-valid:5', 'lws-valid:9', 'stop-lws', 'take-seed', 'take-seed', 'start-lws', 'lws-valid:20']);
    expect(state.phase).toBe('stable');
    expect(state.validSeq).toBe(20);
  });

  it('a seed slower than the threshold is followed by another seed, not LWS', () => {
    const { state, log, actions } = run([
      { kind: 'seed-completed', nowMs: 70 * MIN },
      { kind: 'seed-completed', nowMs: 80 * MIN },
    ]);
    expect(log.map((t) => t.phase)).toEqual(['second-seed']);
    expect(actions).toEqual(['take-seed', 'take-seed', 'start-lws']);
    expect(state.phase).toBe('second-seed');
  });

  it('refuses LWS events while LWS are not shipping, and time going backwards', () => {
    const { state } = startNearSync(1000);
    expect(() => nearSyncStep(state, { kind: 'lws-taken', nowMs: 2000, seq: 1 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => nearSyncStep(state, { kind: 'tick', nowMs: 999 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('property: valid LWS never go backwards, are only acknowledged ones, and none become valid outside stable', () => {
    const eventArb = fc.oneof(
      fc.constant('seed-completed' as const),
      fc.constant('lws-taken' as const),
      fc.constant('lws-acked' as const),
      fc.constant('tick' as const),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(eventArb, fc.integer({ min: 0, max: 90 * MIN })), { maxLength: 60 }), (raw) => {
        let { state } = startNearSync(0);
        let now = 0;
        let nextSeq = 1;
        let lastValid = 0;
        for (const [kind, dt] of raw) {
          now += dt;
          let event: NearSyncEvent;
          const shipping = state.phase === 'second-seed' || state.phase === 'stable';
          if (kind === 'lws-taken' && shipping) event = { kind, nowMs: now, seq: nextSeq++ };
          else if (kind === 'lws-acked' && state.unacked.length > 0) event = { kind, nowMs: now, seq: state.unacked[0]![0] };
          else if (kind === 'seed-completed') event = { kind, nowMs: now };
          else event = { kind: 'tick', nowMs: now };
          const step = nearSyncStep(state, event);
          for (const a of step.actions) {
            if (a.kind !== 'lws-valid') continue;
            // Valid only when acknowledged in stable, or made valid by the second seed (a fallback
            // in the same step does not unmake LWS the target already holds).
            expect(state.phase === 'stable' || step.transitions.some((t) => t.to === 'stable')).toBe(true);
            expect(a.seq).toBeGreaterThanOrEqual(lastValid);
            expect(a.seq).toBeLessThanOrEqual(step.state.ackedSeq!);
            lastValid = a.seq;
          }
          const oldest = step.state.unacked[0];
          if (oldest !== undefined) expect(now - oldest[1]).toBeLessThanOrEqual(NEARSYNC_DEFAULT_THRESHOLD_MS);
          state = step.state;
        }
      }),
      { seed: 20261202, numRuns: 300 },
    );
  });

  it('a lost LWS chain (hold dropped at the log bound) falls back at once with its reason; ignored when not shipping', () => {
    let { state } = startNearSync(0);
    state = nearSyncStep(state, { kind: 'seed-completed', nowMs: MIN }).state;
    expect(state.phase).toBe('second-seed');
    const lost = nearSyncStep(state, { kind: 'lws-lost', nowMs: 2 * MIN, reason: 'the write-log hold was dropped at the log bound' });
    expect(lost.state.phase).toBe('fallback');
    expect(lost.state.seedStartedMs).toBe(2 * MIN);
    expect(lost.actions).toEqual([{ kind: 'stop-lws' }, { kind: 'take-seed' }]);
    expect(lost.transitions).toEqual([{ from: 'second-seed', to: 'fallback', atMs: 2 * MIN, reason: 'LWS chain lost (the write-log hold was dropped at the log bound): back to full snapshots' }]);
    const again = nearSyncStep(lost.state, { kind: 'lws-lost', nowMs: 3 * MIN, reason: 'late' });
    expect(again.state.phase).toBe('fallback');
    expect(again.actions).toEqual([]);
  });
});
