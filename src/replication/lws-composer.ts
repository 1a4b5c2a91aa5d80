/**
 * Composition at a NearSync target, on the target's own Clock: every `everyMs` (default
 * 60 minutes) each session received here gets a full snapshot composed from its previous
 * full snapshot plus the LWS up to the newest valid marker (the source sends no full
 * snapshot for it), then LWS older than `lwsRetentionMs` are retired — their records
 * dropped once no kept point needs them — and, with `pruneComposed`, the composed
 * snapshots it names are deleted (the policy layer's `composedRetention` plans them by a
 * schedule's remote retention; bases the kept LWS still need are never deleted).
 *
 * Fault model: a composition that fails (a crash, CORRUPTION) leaves the journal as it was
 * (the new base is recorded only after the composed snapshot is committed) and is tried
 * again at the next interval; a crash between the snapshot and the record leaves an
 * unreferenced composed snapshot, never a base that is not there.
 */
import type { Clock } from '../adapters/clock.js';
import type { SnapshotInfo } from '../snapshot/index.js';
import type { LwsJournal } from './lws-journal.js';

/** Default composition interval: hourly, as the seed describes it. */
export const LWS_DEFAULT_COMPOSE_EVERY_MS = 60 * 60 * 1000;

/** Default LWS retention: every LWS of the last hour. */
export const LWS_DEFAULT_RETENTION_MS = 60 * 60 * 1000;

/** Options of {@link startLwsComposer}. */
export interface LwsComposerOptions {
  readonly journal: LwsJournal;
  readonly clock: Clock;
  /** @defaultValue {@link LWS_DEFAULT_COMPOSE_EVERY_MS} */
  readonly everyMs?: number;
  /** @defaultValue {@link LWS_DEFAULT_RETENTION_MS} */
  readonly lwsRetentionMs?: number;
  /**
   * Which composed snapshots of a session to delete after each round, given them (oldest
   * first) and the ids of those the kept LWS still use as bases (refused if named).
   * @defaultValue undefined: composed snapshots are kept until deleted otherwise
   */
  readonly pruneComposed?: (session: { readonly sourceSiteId: string; readonly sessionId: string }, composed: readonly SnapshotInfo[], baseIds: readonly string[], nowMs: number) => readonly string[];
  readonly onComposed?: (c: { sourceSiteId: string; sessionId: string; seq: number; snapshots: readonly SnapshotInfo[]; atMs: number }) => void;
  readonly onError?: (err: unknown) => void;
}

/** A running composer. */
export interface LwsComposer {
  /** One round now (also what the timer runs). */
  runOnce(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts composing on the clock (see the file header). */
export function startLwsComposer(o: LwsComposerOptions): LwsComposer {
  const everyMs = o.everyMs ?? LWS_DEFAULT_COMPOSE_EVERY_MS;
  const retentionMs = o.lwsRetentionMs ?? LWS_DEFAULT_RETENTION_MS;
  let stopped = false;
  let running: Promise<number> = Promise.resolve(0);
  const runOnce = (): Promise<number> => {
    running = running.then(async () => {
      let composed = 0;
      for (const s of o.journal.sessions()) {
        const points = (await o.journal.points({ sourceSiteId: s.sourceSiteId, sessionId: s.sessionId })).filter((p) => p.valid);
        const newest = points.at(-1);
        const newestBase = Math.max(...s.bases.map((b) => b.markerSeq));
        if (newest !== undefined && newest.seq > newestBase) {
          const snaps = await o.journal.compose(s.sourceSiteId, s.sessionId, newest.seq, `lws-composed-${s.sessionId}-${newest.seq}`);
          composed++;
          o.onComposed?.({ sourceSiteId: s.sourceSiteId, sessionId: s.sessionId, seq: newest.seq, snapshots: [...snaps.values()], atMs: o.clock.now() });
        }
        await o.journal.retire(s.sourceSiteId, s.sessionId, o.clock.now() - retentionMs);
        if (o.pruneComposed !== undefined) {
          const ids = o.pruneComposed(s, o.journal.composedSnapshots(s.sourceSiteId, s.sessionId), o.journal.composedBaseIds(s.sourceSiteId, s.sessionId), o.clock.now());
          if (ids.length > 0) await o.journal.deleteComposed(s.sourceSiteId, s.sessionId, ids);
        }
      }
      return composed;
    });
    return running;
  };
  let timer = o.clock.setTimer(everyMs, function tick() {
    runOnce().catch((err: unknown) => o.onError?.(err)).finally(() => {
      if (!stopped) timer = o.clock.setTimer(everyMs, tick);
    });
  });
  return {
    runOnce,
    async stop() {
      stopped = true;
      timer.cancel();
      await running.catch(() => undefined);
    },
  };
}
