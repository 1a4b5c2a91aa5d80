/**
 * The NearSync engine of one protection domain (its consistency group's volumes) towards
 * one remote site, on a Clock: the seed's lifecycle ({@link nearSyncStep}) is its brain;
 * the engine executes the actions — seeds (group snapshots replicated with
 * `Site.replicate`), light-weight snapshots every `lwsIntervalMs` (write-log markers) and
 * their shipping ({@link LwsShipper}) — and feeds back what happened.
 *
 * Durability promise: the lifecycle state, the chain's seed (its marker and snapshot ids)
 * and the seed being replicated are written to the MetaStore (synced) with every change,
 * before the action they lead to runs; a restarted engine resumes where it was: a seed in
 * flight is replicated again (resumable replication sends only what the target lacks), a
 * chain whose write-log hold survived keeps shipping from it, one whose hold was dropped
 * falls back. Every phase change is an event with its reason.
 * Bound promise: a target that lags past the log's bound loses its hold
 * (`onWriteLogHoldDropped`): the next ship reports it and the engine falls back
 * (`lws-lost`) and re-seeds, so the retained log never grows past the bound.
 */
import { DrkitError, isDrkitError } from '../core/errors.js';
import type { Clock } from '../adapters/clock.js';
import type { MetaStore } from '../adapters/meta-store.js';
import type { LwsShipper, RemoteSite, Site, SiteTransferOptions } from '../replication/index.js';
import { nearSyncStep, startNearSync, NEARSYNC_DEFAULT_THRESHOLD_MS, type NearSyncAction, type NearSyncEvent, type NearSyncPhase, type NearSyncState } from './nearsync-lifecycle.js';

/** Default LWS interval: every 60 s; NearSync can take one every second (`lwsIntervalMs: 1000`). */
export const NEARSYNC_DEFAULT_LWS_INTERVAL_MS = 60_000;

/** What the engine reports. */
export type NearSyncEngineEvent =
  | { readonly kind: 'transition'; readonly from: NearSyncPhase; readonly to: NearSyncPhase; readonly atMs: number; readonly reason: string }
  | { readonly kind: 'seed-started'; readonly atMs: number; readonly snapshotIds: readonly string[]; readonly withLws: boolean }
  | { readonly kind: 'seed-replicated'; readonly atMs: number; readonly snapshotIds: readonly string[] }
  | { readonly kind: 'seed-failed'; readonly atMs: number; readonly reason: string }
  | { readonly kind: 'lws-taken'; readonly atMs: number; readonly seq: number }
  | { readonly kind: 'lws-shipped'; readonly atMs: number; readonly seq: number; readonly records: number; readonly wireBytes: number }
  /** LWS up to `seq` are valid at the target; `timeMs` is when the source took LWS `seq` (undefined when taken before a restart). */
  | { readonly kind: 'lws-valid'; readonly atMs: number; readonly seq: number; readonly timeMs: number | undefined }
  | { readonly kind: 'ship-failed'; readonly atMs: number; readonly reason: string };

/** Options of {@link NearSyncEngine.open}. */
export interface NearSyncEngineOptions {
  /** The source site (its tree must have a write log). */
  readonly site: Site;
  readonly remote: RemoteSite;
  /** Session id: one per protection domain and remote site. */
  readonly sessionId: string;
  /** The consistency group's volumes. */
  readonly volumeIds: readonly string[];
  /** Where the engine's state lives. @defaultValue the site's MetaStore */
  readonly meta?: MetaStore;
  readonly clock: Clock;
  /** LWS interval. @defaultValue {@link NEARSYNC_DEFAULT_LWS_INTERVAL_MS} */
  readonly lwsIntervalMs?: number;
  /** Seed duration and LWS lag threshold. @defaultValue {@link NEARSYNC_DEFAULT_THRESHOLD_MS} (60 minutes) */
  readonly thresholdMs?: number;
  /** Options of the seeds' replication (retries, bandwidth). @defaultValue `{ retries: 0 }`: a failed seed is retried by the lifecycle */
  readonly replicateOptions?: SiteTransferOptions;
  readonly onEvent?: (event: NearSyncEngineEvent) => void;
}

interface Persisted {
  readonly lifecycle: NearSyncState;
  /** The chain's seed: its marker and the seed snapshot per volume. */
  readonly base?: { readonly markerSeq: number; readonly snapshotIds: Record<string, string> };
  /** The seed snapshots being replicated. */
  readonly seed?: { readonly snapshotIds: readonly string[] };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** See the file header. */
export class NearSyncEngine {
  readonly sessionId: string;
  readonly #o: NearSyncEngineOptions;
  readonly #meta: MetaStore;
  readonly #shipper: LwsShipper;
  readonly #key: Uint8Array;
  readonly #intervalMs: number;
  #p: Persisted;
  #running = false;
  #loop: Promise<void> | undefined;
  #wake: AbortController | undefined;
  #seedJob: Promise<void> | undefined;
  #shipJob: Promise<void> | undefined;
  /** The newest LWS not yet handed to a ship. */
  #pendingMark: { seq: number; offset: number } | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #seedNo = 0;
  /** Source time of each LWS taken and not yet valid (at most threshold / interval of them: older ones fall back), for the lws-valid event. */
  readonly #takenMs = new Map<number, number>();
  #seedGen = 0;

  private constructor(o: NearSyncEngineOptions, p: Persisted) {
    this.#o = o;
    this.sessionId = o.sessionId;
    this.#meta = o.meta ?? o.site.meta;
    this.#key = enc.encode(`nearsync/engine/${o.remote.siteId}/${o.sessionId}`);
    this.#intervalMs = o.lwsIntervalMs ?? NEARSYNC_DEFAULT_LWS_INTERVAL_MS;
    this.#shipper = o.site.nearSync(o.remote, { sessionId: o.sessionId, volumeIds: o.volumeIds });
    this.#p = p;
    if (p.base !== undefined) this.#shipper.setBase(p.base.markerSeq, new Map(Object.entries(p.base.snapshotIds)));
  }

  /**
   * Opens the engine: resumes the persisted state, or starts NearSync (the initial seed).
   * @throws INVALID_ARGUMENT for a bad interval, threshold or volume list
   */
  static async open(o: NearSyncEngineOptions): Promise<NearSyncEngine> {
    if (!Number.isSafeInteger(o.lwsIntervalMs ?? 1) || (o.lwsIntervalMs ?? 1) < 1) throw new DrkitError('INVALID_ARGUMENT', 'lwsIntervalMs must be a positive integer');
    if (o.volumeIds.length === 0) throw new DrkitError('INVALID_ARGUMENT', 'NearSync needs at least one volume');
    const meta = o.meta ?? o.site.meta;
    const raw = await meta.get(enc.encode(`nearsync/engine/${o.remote.siteId}/${o.sessionId}`));
    const p: Persisted = raw === undefined ? { lifecycle: startNearSync(o.clock.now()).state } : (JSON.parse(dec.decode(raw)) as Persisted);
    const e = new NearSyncEngine(o, p);
    if (raw === undefined) await e.#save();
    return e;
  }

  /** The lifecycle state. */
  get state(): NearSyncState {
    return this.#p.lifecycle;
  }

  /** The write-log holder id of the session. */
  get holderId(): string {
    return this.#shipper.holderId;
  }

  /** Payload bytes shipped so far (records with their headers). */
  get wireBytes(): number {
    return this.#shipper.wireBytes;
  }

  /** Whole blocks shipped without their data so far (the target held them: sent as fingerprint references). */
  get dedupedBlocks(): number {
    return this.#shipper.dedupedBlocks;
  }

  /** Starts the engine's loop on the clock (idempotent). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const phase = this.#p.lifecycle.phase;
    const shipping = phase === 'second-seed' || phase === 'stable';
    if (shipping && !this.#o.site.tree.writeLogHolds().has(this.#shipper.holderId)) {
      void this.#feed({ kind: 'lws-lost', nowMs: this.#o.clock.now(), reason: 'the write-log hold did not survive the restart' });
    } else if (this.#p.seed !== undefined) this.#runSeed(this.#p.seed.snapshotIds);
    else if (phase === 'seeding' || phase === 'fallback') void this.#execute([{ kind: 'take-seed' }]);
    this.#loop = this.#run();
  }

  /** Stops the loop and waits for the jobs in flight; the state stays (a later open resumes). */
  async stop(): Promise<void> {
    this.#running = false;
    this.#wake?.abort();
    await this.#loop;
    await this.#seedJob?.catch(() => undefined);
    await this.#shipJob?.catch(() => undefined);
    await this.#queue;
    await this.#shipper.close();
  }

  async #run(): Promise<void> {
    while (this.#running) {
      await this.#tick().catch((err: unknown) => this.#emit({ kind: 'ship-failed', atMs: this.#o.clock.now(), reason: String((err as Error).message) }));
      this.#wake = new AbortController();
      await this.#o.clock.sleep(this.#intervalMs, { signal: this.#wake.signal }).catch(() => undefined);
    }
  }

  /** One interval: an LWS when shipping, its shipping, the lag check. */
  async #tick(): Promise<void> {
    const phase = this.#p.lifecycle.phase;
    if ((phase === 'second-seed' || phase === 'stable') && this.#p.base !== undefined) {
      const at = await this.#shipper.mark();
      this.#emit({ kind: 'lws-taken', atMs: this.#o.clock.now(), seq: at.seq });
      this.#takenMs.set(at.seq, this.#o.clock.now());
      await this.#feed({ kind: 'lws-taken', nowMs: this.#o.clock.now(), seq: at.seq });
      this.#pendingMark = at;
      this.#kickShip();
    }
    await this.#feed({ kind: 'tick', nowMs: this.#o.clock.now() });
  }

  /**
   * Ships up to the newest marker taken, one ship at a time; a ship that succeeds starts
   * the next at once when markers were taken meanwhile (so a slow ship does not leave the
   * next LWS waiting for a tick); one that fails waits for the next tick.
   */
  #kickShip(): void {
    const upTo = this.#pendingMark;
    if (this.#shipJob !== undefined || upTo === undefined || !this.#running) return;
    this.#pendingMark = undefined;
    this.#shipJob = this.#ship(upTo).then((ok) => {
      this.#shipJob = undefined;
      if (ok) this.#kickShip();
    });
  }

  async #ship(upTo: { seq: number; offset: number }): Promise<boolean> {
    try {
      const r = await this.#shipper.ship(upTo);
      if (r.kind === 'superseded') return false;
      if (r.kind === 'dropped') {
        await this.#feed({ kind: 'lws-lost', nowMs: this.#o.clock.now(), reason: 'the write-log hold was dropped at the log bound' });
        return false;
      }
      this.#emit({ kind: 'lws-shipped', atMs: this.#o.clock.now(), seq: upTo.seq, records: r.records, wireBytes: r.wireBytes });
      if (this.#p.base !== undefined) await this.#feed({ kind: 'lws-acked', nowMs: this.#o.clock.now(), seq: upTo.seq });
      return true;
    } catch (err) {
      this.#emit({ kind: 'ship-failed', atMs: this.#o.clock.now(), reason: isDrkitError(err) ? `${err.code}: ${err.message}` : String(err) });
      return false;
    }
  }

  /** Feeds the lifecycle one event, persists, then executes its actions (serialized). */
  #feed(event: NearSyncEvent): Promise<void> {
    const run = this.#queue.then(async () => {
      const phase = this.#p.lifecycle.phase;
      if ((event.kind === 'lws-taken' || event.kind === 'lws-acked') && phase !== 'second-seed' && phase !== 'stable') return;
      const step = nearSyncStep(this.#p.lifecycle, event, this.#o.thresholdMs === undefined ? {} : { thresholdMs: this.#o.thresholdMs });
      this.#p = { ...this.#p, lifecycle: step.state };
      if (step.actions.some((a) => a.kind === 'stop-lws')) this.#p = { ...this.#p, base: undefined };
      await this.#save();
      for (const t of step.transitions) this.#emit({ kind: 'transition', ...t });
      await this.#execute(step.actions);
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #execute(actions: readonly NearSyncAction[]): Promise<void> {
    const withLws = actions.some((a) => a.kind === 'start-lws');
    for (const a of actions) {
      if (a.kind === 'stop-lws') {
        await this.#shipper.stop();
        this.#takenMs.clear();
      }
      else if (a.kind === 'lws-valid') {
        const timeMs = this.#takenMs.get(a.seq);
        for (const seq of this.#takenMs.keys()) if (seq <= a.seq) this.#takenMs.delete(seq);
        this.#emit({ kind: 'lws-valid', atMs: this.#o.clock.now(), seq: a.seq, timeMs });
      }
    }
    if (!actions.some((a) => a.kind === 'take-seed')) return;
    const tree = this.#o.site.tree;
    const name = `nearsync-${this.sessionId}-seed-${this.#o.clock.now()}-${this.#seedNo++}`;
    let snaps;
    if (withLws) {
      // Mark and hold BEFORE the seed snapshot: the LWS chain starts at the marker.
      const at = await this.#shipper.markSeed();
      snaps = await tree.snapshotGroup(this.#o.volumeIds, { name });
      this.#shipper.setBase(at.seq, new Map(snaps.map((s) => [s.volumeId, s.id])));
      this.#p = { ...this.#p, base: { markerSeq: at.seq, snapshotIds: Object.fromEntries(snaps.map((s) => [s.volumeId, s.id])) } };
    } else snaps = await tree.snapshotGroup(this.#o.volumeIds, { name });
    const ids = snaps.map((s) => s.id);
    this.#p = { ...this.#p, seed: { snapshotIds: ids } };
    await this.#save();
    this.#emit({ kind: 'seed-started', atMs: this.#o.clock.now(), snapshotIds: ids, withLws });
    this.#runSeed(ids);
  }

  /**
   * Replicates the seed `ids` until it completes, retrying the SAME snapshots every
   * interval (resumable: only what the target lacks is sent), so the LWS chain's base is
   * never replaced behind its back; a newer seed (after a fallback) supersedes it.
   */
  #runSeed(ids: readonly string[]): void {
    const gen = ++this.#seedGen;
    const job = (async () => {
      for (;;) {
        try {
          await this.#o.site.replicate(ids, this.#o.remote, this.#o.replicateOptions ?? { retries: 0 });
          break;
        } catch (err) {
          if (!this.#running || gen !== this.#seedGen) return;
          this.#emit({ kind: 'seed-failed', atMs: this.#o.clock.now(), reason: isDrkitError(err) ? `${err.code}: ${err.message}` : String(err) });
          await this.#o.clock.sleep(this.#intervalMs);
          if (!this.#running || gen !== this.#seedGen) return;
        }
      }
      if (gen !== this.#seedGen) return;
      this.#emit({ kind: 'seed-replicated', atMs: this.#o.clock.now(), snapshotIds: ids });
      this.#p = { ...this.#p, seed: undefined };
      await this.#feed({ kind: 'seed-completed', nowMs: this.#o.clock.now() });
    })();
    this.#seedJob = job;
  }

  async #save(): Promise<void> {
    await this.#meta.batch([{ kind: 'put', key: this.#key, value: enc.encode(JSON.stringify(this.#p)) }], { sync: true });
  }

  #emit(e: NearSyncEngineEvent): void {
    this.#o.onEvent?.(e);
  }
}
