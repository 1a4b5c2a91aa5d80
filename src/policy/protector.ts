/**
 * Protector: the engine that runs protection domains on an injected Clock. A scheduling
 * pass ({@link Protector.tick}) fires every due schedule — one consistency-group
 * snapshot per unit, application-consistent where configured — queues the replications
 * to the schedule's remote sites, applies local and remote retention, and measures the
 * RPO of every domain at every site. {@link Protector.start} runs passes on clock
 * timers at the next instant anything is due.
 *
 * Fault model and promises:
 * - A schedule missed while the engine was down fires ONCE on restart (the latest due
 *   instant, `latestDueFireMs`), never once per missed instant.
 * - State (last fire per schedule, queued replications, what each site holds, breach
 *   state) is persisted in the MetaStore with `sync` before the engine treats the step
 *   as done. After a crash at any moment a new engine on the same stores neither loses
 *   nor repeats work: snapshots taken for a fire whose record did not land are found by
 *   their metadata and adopted (the missing units are taken); a replication queued or
 *   running at the crash is retried, and resumes (the receiver reports what it holds).
 * - Retention never deletes a snapshot queued for replication, nor the latest snapshot
 *   of a unit that a site holds (the next replication's base), here or at the site.
 * - If persisting fails, the engine stops and reports `engine-failed`; reopen it.
 */
import { metroProtectionOf, type MetroProtection } from './metro-relation.js';
import { DrkitError, isDrkitError, toDrkitError } from '../core/errors.js';
import type { TimerHandle } from '../adapters/clock.js';
import type { RemoteSite as ReplicationRemote, Site, SiteTransferOptions } from '../replication/index.js';
import type { SnapshotInfo } from '../snapshot/index.js';
import { assertUniqueMembership } from './membership-violations.js';
import { createProtectionDomain, type ProtectionDomain, type ProtectionDomainSpec } from './protection-domain.js';
import type { PendingReplication, ProtectorEvent, RpoStatus } from './protector-event.js';
import { latestDueFireMs, nextFireMs } from './schedule-math.js';
import type { Schedule } from './schedule.js';
import { AD_HOC, DomainRuntime, META_DOMAIN, META_FIRE, META_SCHEDULE, META_UNIT } from './internal/domain-runtime.js';
import { domainKey, domainPrefix, decodeDomainRecord, encodeDomainRecord, newDomainState, type PendingItem } from './internal/protector-state.js';
import { resolveUnits } from './internal/resolve-units.js';
import { takeUnit, type TakeHost } from './internal/take-unit.js';
import { applyLocalRetention, applyRemoteRetention, type RetentionHost } from './internal/retention-runner.js';
import { checkProtectorOptions, type ProtectorOptions } from './protector-options.js';
import { NearSyncEngine } from './nearsync-engine.js';
import { nearSyncSessionId } from './internal/nearsync-session-id.js';
import { replicationRemoteOf, type RemoteSite } from './remote-site.js';

export { MAX_PENDING_PER_SITE } from './internal/take-unit.js';

/** Options of {@link Protector.snapshotNow}. */
export interface SnapshotNowOptions {
  /** Also replicate to every remote site the domain's schedules replicate to. @defaultValue false */
  replicate?: boolean;
}

/** See the module comment. */
export class Protector {
  readonly #o: ReturnType<typeof checkProtectorOptions>;
  readonly #domains = new Map<string, DomainRuntime>();
  /** Every remote site a domain names, by id: one configuration per id across domains. */
  readonly #remotes = new Map<string, { site: RemoteSite; remote: ReplicationRemote }>();
  readonly #host: RetentionHost;
  readonly #takeHost: TakeHost;
  #failure: DrkitError | undefined;
  #started = false;
  #timer: TimerHandle | undefined;
  #timerDueMs = Infinity;
  #passRunning = false;
  #passAgain = false;
  #transfers = 0;
  #active = 0;
  #idleWaiters: (() => void)[] = [];
  #abort = new AbortController();
  /** NearSync engines by `${domainId}/${siteId}` (see ProtectorOptions.nearSync). */
  readonly #nearSync = new Map<string, NearSyncEngine>();

  private constructor(options: ReturnType<typeof checkProtectorOptions>) {
    this.#o = options;
    this.#host = {
      site: options.site,
      clock: options.clock,
      remoteFor: (siteId) => this.#remotes.get(siteId)?.remote,
      transferOptions: () => this.#transferOptions(),
      emit: (e) => this.#emit(e),
      persist: (rt) => this.#persist(rt),
    };
    this.#takeHost = { ...this.#host, quiesce: options.quiesce, quiesceTimeoutMs: options.quiesceTimeoutMs };
  }

  /**
   * Opens the engine on `meta`, loading every domain it persisted, adopting snapshots of
   * fires whose record was lost in a crash. Does not start timers: call {@link start}.
   * @throws INVALID_ARGUMENT for bad options; FORMAT_VERSION, CORRUPTION for unreadable state
   */
  static async open(options: ProtectorOptions): Promise<Protector> {
    const p = new Protector(checkProtectorOptions(options));
    const records: { domain: ProtectionDomain; state: ReturnType<typeof newDomainState> }[] = [];
    for await (const [, value] of p.#o.meta.iterate({ prefix: domainPrefix(p.#o.keyPrefix) })) records.push(decodeDomainRecord(value));
    const snapshots = p.#o.site.tree.listSnapshots();
    for (const r of records) p.#adoptRemotes(r.domain, undefined);
    for (const r of records) {
      const rt = new DomainRuntime(r.domain, r.state);
      p.#domains.set(r.domain.id, rt);
      p.#index(rt, snapshots);
    }
    for (const rt of p.#domains.values()) await rt.lock.run(() => p.#recoverFires(rt, snapshots));
    return p;
  }

  /**
   * Adds a protection domain, or replaces the definition of one with the same id (its
   * state is kept; replications to sites it no longer uses are dropped). The first pass
   * after adding takes its first snapshots.
   * @throws INVALID_ARGUMENT for an invalid domain, a remote site another domain configures differently, or an entity another domain protects; what `connectionFor` throws
   */
  async addDomain(spec: ProtectionDomain | ProtectionDomainSpec): Promise<ProtectionDomain> {
    this.#ensureUsable();
    const domain = createProtectionDomain(spec as ProtectionDomainSpec);
    assertUniqueMembership([...[...this.#domains.values()].filter((rt) => rt.domain.id !== domain.id).map((rt) => rt.domain), domain]);
    const existing = this.#domains.get(domain.id);
    this.#adoptRemotes(domain, domain.id);
    const rt = existing ?? new DomainRuntime(domain, newDomainState(this.#o.clock.now()));
    await this.#track(() => rt.lock.run(async () => {
      rt.domain = domain;
      const sites = new Set(domain.schedules.flatMap((s) => s.remoteSiteIds));
      const dropped = rt.state.pending.filter((p) => !sites.has(p.siteId));
      rt.state.pending = rt.state.pending.filter((p) => sites.has(p.siteId));
      for (const id of Object.keys(rt.state.lastFireMs)) if (!domain.schedules.some((s) => s.id === id)) delete rt.state.lastFireMs[id];
      if (existing === undefined) {
        this.#domains.set(domain.id, rt);
        this.#index(rt, this.#o.site.tree.listSnapshots());
      }
      this.#refreshUnits(rt);
      rt.resetFires(this.#o.clock.now());
      await this.#persist(rt);
      for (const p of dropped) this.#emit({ kind: 'replication-dropped', atMs: this.#o.clock.now(), domainId: domain.id, siteId: p.siteId, unitKey: p.unitKey, snapshotIds: p.snapshotIds, reason: 'site-removed' });
      rt.refreshDue(this.#o.graceMs);
    }));
    if (this.#started) this.#background(this.#startNearSyncReported(rt));
    this.#arm();
    return domain;
  }

  /**
   * Stops protecting a domain and forgets its state. Its snapshots, here and at remote
   * sites, are left as they are. Unknown ids are ignored.
   */
  async removeDomain(domainId: string): Promise<void> {
    this.#ensureUsable();
    const rt = this.#domains.get(domainId);
    if (rt === undefined) return;
    await this.#track(() => rt.lock.run(async () => {
      await this.#o.meta.batch([{ kind: 'del', key: domainKey(this.#o.keyPrefix, domainId) }], { sync: true }).catch((err: unknown) => this.#fail(err));
      rt.removed = true;
      this.#domains.delete(domainId);
    }));
    for (const [key, engine] of this.#nearSync) {
      if (!key.startsWith(`${domainId}/`)) continue;
      await engine.stop();
      this.#nearSync.delete(key);
    }
    this.#arm();
  }

  /** The domains under protection. */
  listDomains(): ProtectionDomain[] {
    return [...this.#domains.values()].map((rt) => rt.domain);
  }

  /**
   * One scheduling pass: for every domain with something due (a fire, a retention
   * window that moved, an RPO deadline), fire, apply retention and update RPO, at most
   * `concurrency` domains at once; then start due replications (at most `concurrency`
   * transfers run at once, in the background: {@link whenIdle} awaits them).
   * @throws the engine's failure once it has failed
   */
  async tick(): Promise<void> {
    this.#ensureUsable();
    await this.#track(async () => {
      const nowMs = this.#o.clock.now();
      const due = [...this.#domains.values()].filter((rt) => rt.nextDueMs <= nowMs);
      let next = 0;
      const worker = async () => {
        while (next < due.length) await this.#service(due[next++]!);
      };
      await Promise.all(Array.from({ length: Math.min(this.#o.concurrency, due.length) }, worker));
      this.#pump();
    });
    this.#arm();
  }

  /** Runs passes on clock timers, each at the next instant something is due. Idempotent. */
  start(): void {
    this.#ensureUsable();
    if (this.#started) return;
    this.#started = true;
    this.#abort = new AbortController();
    for (const rt of this.#domains.values()) this.#background(this.#startNearSyncReported(rt));
    this.#arm(true);
  }

  /** Stops the timers, aborts running transfers (they stay queued) and waits for work in progress. */
  async stop(): Promise<void> {
    this.#started = false;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#abort.abort(new DrkitError('ABORTED', 'protector stopped'));
    await this.whenIdle();
    for (const [key, engine] of this.#nearSync) {
      await engine.stop();
      this.#nearSync.delete(key);
    }
    this.#abort = new AbortController();
  }

  /** Same as {@link stop}. The stores stay open: they are the caller's. */
  async close(): Promise<void> {
    await this.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** True when no pass, transfer or retention run is in progress. */
  get idle(): boolean {
    return this.#active === 0;
  }

  /** Resolves once no pass, transfer or retention run is in progress. */
  whenIdle(): Promise<void> {
    if (this.#active === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** The next instant the engine has something to do (a fire, a retry, a deadline), or undefined (nothing, or the engine failed). */
  nextWakeMs(): number | undefined {
    if (this.#failure !== undefined) return undefined;
    const t = this.#computeWake();
    return t === Infinity ? undefined : t;
  }

  /**
   * Takes an ad-hoc snapshot of every unit of a domain now, optionally replicated to the
   * sites its schedules replicate to. Ad-hoc snapshots are not subject to any schedule's
   * retention: delete them yourself.
   * @throws NOT_FOUND for an unknown domain; the snapshot's errors
   */
  async snapshotNow(domainId: string, options: SnapshotNowOptions = {}): Promise<SnapshotInfo[]> {
    this.#ensureUsable();
    const rt = this.#domains.get(domainId);
    if (rt === undefined) throw new DrkitError('NOT_FOUND', `no protection domain '${domainId}'`, { data: { domainId } });
    const sites = options.replicate === true ? [...new Set(rt.domain.schedules.flatMap((s) => s.remoteSiteIds))] : [];
    const out = await this.#track(() => rt.lock.run(async () => {
      const nowMs = this.#o.clock.now();
      const infos: SnapshotInfo[] = [];
      for (const unit of resolveUnits(rt.domain, this.#o)) {
        const taken = await takeUnit(this.#takeHost, rt, undefined, nowMs, unit, sites, true);
        infos.push(...taken);
      }
      await this.#persist(rt);
      return infos;
    }));
    this.#pump();
    this.#arm();
    return out;
  }

  /**
   * The domains protected by Metro (synchronous mirroring to one site, executed by
   * drkit/metro): their relation and what they mirror. Their Metro site is never an
   * asynchronous replication target of the same domain (createProtectionDomain refuses it),
   * so it has no entry in {@link rpoReport}: while mirrored its RPO is 0.
   */
  metroProtections(): MetroProtection[] {
    return [...this.#domains.values()].map((rt) => metroProtectionOf(rt.domain)).filter((m): m is MetroProtection => m !== undefined);
  }

  /** RPO of every domain at every remote site it replicates to, now. */
  rpoReport(): RpoStatus[] {
    const nowMs = this.#o.clock.now();
    const out: RpoStatus[] = [];
    for (const rt of this.#domains.values()) {
      for (const [siteId, targetMs] of rt.targets()) {
        const r = rt.siteRpo(siteId, targetMs, this.#o.graceMs);
        out.push({
          domainId: rt.domain.id, siteId, ageMs: nowMs - r.referenceMs, targetMs, thresholdMs: r.thresholdMs,
          breached: rt.state.breachedSinceMs[siteId] !== undefined, newestCompleteMs: r.newestCompleteMs,
        });
      }
    }
    return out;
  }

  /** Replications the engine still owes, oldest first per domain. */
  pendingReplications(): PendingReplication[] {
    return [...this.#domains.values()].flatMap((rt) =>
      rt.state.pending.map((p) => ({
        domainId: rt.domain.id, siteId: p.siteId, scheduleId: p.scheduleId ?? undefined, unitKey: p.unitKey, snapshotIds: p.snapshotIds,
        createdMs: p.createdMs, attempts: p.attempts, nextAttemptMs: p.nextAttemptMs, inFlight: rt.busySites.has(p.siteId) && rt.heads().includes(p),
      })));
  }

  // ------------------------------------------------------------------ internals

  /** Fires, retention and RPO of one domain (under its lock). */
  async #service(rt: DomainRuntime): Promise<void> {
    await rt.lock.run(async () => {
      if (rt.removed || this.#failure !== undefined) return;
      const nowMs = this.#o.clock.now();
      for (const s of rt.domain.schedules) {
        if ((rt.nextFire.get(s.id) ?? Infinity) > nowMs) continue;
        const fireMs = latestDueFireMs(s, rt.state.lastFireMs[s.id], nowMs);
        if (fireMs !== undefined) await this.#fire(rt, s, fireMs);
        rt.nextFire.set(s.id, nextFireMs(s, nowMs));
      }
      for (const s of rt.domain.schedules) {
        if ((rt.retentionDue.get(s.id) ?? Infinity) > nowMs) continue;
        await applyLocalRetention(this.#host, rt, s);
        for (const siteId of s.remoteSiteIds) {
          // A site that is failing gets its remote retention after its next replication succeeds.
          if (!rt.state.pending.some((p) => p.siteId === siteId && p.attempts > 0)) this.#background(applyRemoteRetention(this.#host, rt, siteId));
        }
      }
      await this.#updateRpo(rt);
    });
  }

  /** Takes the snapshots of one fire (adopting any a crash left behind), queues their replication, records the fire. */
  async #fire(rt: DomainRuntime, schedule: Schedule, fireMs: number): Promise<void> {
    let units: ReturnType<typeof resolveUnits> = [];
    try {
      units = resolveUnits(rt.domain, this.#o);
      rt.unitKeys = units.map((u) => u.unitKey);
    } catch (err) {
      this.#emit({ kind: 'snapshot-failed', atMs: this.#o.clock.now(), domainId: rt.domain.id, scheduleId: schedule.id, fireMs, unitKey: '*', error: toDrkitError(err, 'INTERNAL', 'resolving units failed') });
    }
    // Sites served by NearSync get no replication of this schedule's snapshots: the target composes its own.
    const remoteSiteIds = schedule.nearSyncEligible ? schedule.remoteSiteIds.filter((id) => !this.#nearSync.has(`${rt.domain.id}/${id}`)) : schedule.remoteSiteIds;
    for (const unit of units) await takeUnit(this.#takeHost, rt, schedule, fireMs, unit, remoteSiteIds, false);
    rt.state.lastFireMs[schedule.id] = fireMs;
    await this.#persist(rt);
    await applyLocalRetention(this.#host, rt, schedule);
  }

  /** Starts due transfers while fewer than `concurrency` run: one per domain and site, oldest first. */
  #pump(): void {
    if (this.#failure !== undefined) return;
    const nowMs = this.#o.clock.now();
    const ready: { rt: DomainRuntime; item: PendingItem }[] = [];
    for (const rt of this.#domains.values()) {
      if (rt.state.pending.length === 0) continue;
      for (const item of rt.heads()) if (!rt.busySites.has(item.siteId) && item.nextAttemptMs <= nowMs) ready.push({ rt, item });
    }
    ready.sort((a, b) => a.item.nextAttemptMs - b.item.nextAttemptMs || a.item.createdMs - b.item.createdMs);
    for (const { rt, item } of ready) {
      if (this.#transfers >= this.#o.concurrency) break;
      this.#transfers++;
      rt.busySites.add(item.siteId);
      this.#background(this.#transfer(rt, item));
    }
  }

  async #transfer(rt: DomainRuntime, item: PendingItem): Promise<void> {
    let result: Awaited<ReturnType<Site['replicate']>> | undefined;
    let error: DrkitError | undefined;
    const remote = this.#remotes.get(item.siteId)?.remote;
    try {
      if (remote === undefined) throw new DrkitError('NOT_FOUND', `no remote '${item.siteId}' configured`, { data: { siteId: item.siteId } });
      result = await this.#o.site.replicate(item.snapshotIds, remote, { ...this.#transferOptions(), signal: this.#abort.signal });
    } catch (err) {
      error = toDrkitError(err, 'INTERNAL', 'replication failed');
    }
    let replicated = false;
    try {
      await rt.lock.run(async () => {
        const i = rt.state.pending.indexOf(item);
        if (rt.removed || i < 0 || this.#failure !== undefined) return;
        const atMs = this.#o.clock.now();
        const base = { atMs, domainId: rt.domain.id, siteId: item.siteId, unitKey: item.unitKey, snapshotIds: item.snapshotIds };
        if (result !== undefined) {
          rt.state.pending.splice(i, 1);
          const catalog = (rt.state.catalog[item.siteId] ??= []);
          item.snapshotIds.forEach((snapshotId, k) => catalog.push({
            snapshotId, volumeId: item.volumeIds[k]!, scheduleId: item.scheduleId, unitKey: item.unitKey, createdMs: item.createdMs, groupKey: item.groupKey,
          }));
          await this.#persist(rt);
          this.#emit({ kind: 'replicated', ...base, remoteSnapshotIds: result.remoteSnapshotIds, createdMs: item.createdMs, attempts: item.attempts + 1, sentExtentBytes: result.progress.sentExtentBytes });
          replicated = true;
          const schedule = rt.domain.schedules.find((s) => s.id === item.scheduleId);
          if (schedule !== undefined) await applyLocalRetention(this.#host, rt, schedule);
          await this.#updateRpo(rt);
        } else if (error!.code === 'ABORTED') {
          // Stopped: the item stays queued as it was.
        } else if (error!.code === 'NOT_FOUND' && item.snapshotIds.some((id) => !this.#exists(id))) {
          rt.state.pending.splice(i, 1);
          await this.#persist(rt);
          this.#emit({ kind: 'replication-dropped', ...base, reason: 'snapshot-gone' });
        } else {
          item.attempts++;
          item.nextAttemptMs = atMs + Math.min(this.#o.maxRetryDelayMs, this.#o.retryDelayMs * 2 ** Math.min(30, item.attempts - 1));
          await this.#persist(rt);
          this.#emit({ kind: 'replication-failed', ...base, attempts: item.attempts, nextAttemptMs: item.nextAttemptMs, error: error! });
          await this.#updateRpo(rt);
        }
      });
      if (replicated) await applyRemoteRetention(this.#host, rt, item.siteId);
    } finally {
      this.#transfers--;
      rt.busySites.delete(item.siteId);
      this.#pump();
      this.#arm();
    }
  }

  /** Emits breach and recovery transitions (persisted first) and refreshes the domain's next due time. */
  async #updateRpo(rt: DomainRuntime): Promise<void> {
    const nowMs = this.#o.clock.now();
    const events: ProtectorEvent[] = [];
    for (const [siteId, targetMs] of rt.targets()) {
      const r = rt.siteRpo(siteId, targetMs, this.#o.graceMs);
      const ageMs = nowMs - r.referenceMs;
      const since = rt.state.breachedSinceMs[siteId];
      if (ageMs > r.thresholdMs && since === undefined) {
        rt.state.breachedSinceMs[siteId] = nowMs;
        events.push({ kind: 'rpo-breached', atMs: nowMs, domainId: rt.domain.id, siteId, ageMs, targetMs, thresholdMs: r.thresholdMs });
      } else if (ageMs <= r.thresholdMs && since !== undefined) {
        delete rt.state.breachedSinceMs[siteId];
        events.push({ kind: 'rpo-recovered', atMs: nowMs, domainId: rt.domain.id, siteId, ageMs, targetMs, breachedForMs: nowMs - since });
      }
    }
    if (events.length > 0) await this.#persist(rt);
    for (const e of events) this.#emit(e);
    rt.refreshDue(this.#o.graceMs);
  }

  /** At open: a fire whose snapshots exist but whose record did not land is completed, not repeated. */
  async #recoverFires(rt: DomainRuntime, snapshots: readonly SnapshotInfo[]): Promise<void> {
    this.#refreshUnits(rt);
    for (const s of rt.domain.schedules) {
      let latest: number | undefined;
      for (const info of snapshots) {
        const m = info.userMetadata;
        if (m[META_DOMAIN] !== rt.domain.id || m[META_SCHEDULE] !== s.id) continue;
        const fireMs = Number(m[META_FIRE]);
        if (fireMs > (rt.state.lastFireMs[s.id] ?? -1) && (latest === undefined || fireMs > latest)) latest = fireMs;
      }
      if (latest !== undefined) await this.#fire(rt, s, latest);
    }
    rt.resetFires(this.#o.clock.now());
    for (const s of rt.domain.schedules) rt.retentionDue.set(s.id, this.#o.clock.now()); // re-plan once after a restart
    rt.refreshDue(this.#o.graceMs);
  }

  /** Indexes the engine's live snapshots of a domain. */
  #index(rt: DomainRuntime, snapshots: readonly SnapshotInfo[]): void {
    rt.live.clear();
    for (const info of snapshots) {
      const m = info.userMetadata;
      if (m[META_DOMAIN] !== rt.domain.id || m[META_UNIT] === undefined) continue;
      rt.addLive(m[META_SCHEDULE] ?? AD_HOC, m[META_UNIT], info);
    }
  }

  #refreshUnits(rt: DomainRuntime): void {
    try {
      rt.unitKeys = resolveUnits(rt.domain, this.#o).map((u) => u.unitKey);
    } catch {
      // Resolved again at each fire; until then RPO is measured over the units last known.
    }
  }

  /**
   * Resolves the connections of the remote sites `domain` replicates to. A site id names
   * one site: another domain (other than `replacing`) configuring it differently is refused.
   * @throws INVALID_ARGUMENT with `data.siteId`; what `connectionFor` throws
   */
  #adoptRemotes(domain: ProtectionDomain, replacing: string | undefined): void {
    const used = new Set(domain.schedules.flatMap((s) => s.remoteSiteIds));
    const others = [...this.#domains.values()].filter((rt) => rt.domain.id !== replacing).map((rt) => rt.domain);
    const resolved: [string, { site: RemoteSite; remote: ReplicationRemote }][] = [];
    for (const site of domain.remoteSites) {
      if (!used.has(site.id)) continue;
      const clash = others.flatMap((d) => d.remoteSites).find((s) => s.id === site.id && JSON.stringify(s) !== JSON.stringify(site));
      if (clash !== undefined) {
        throw new DrkitError('INVALID_ARGUMENT', `domain '${domain.id}' configures remote site '${site.id}' differently from another domain: one id names one site`, { data: { field: 'remoteSites', siteId: site.id } });
      }
      const known = this.#remotes.get(site.id);
      if (known !== undefined && JSON.stringify(known.site) === JSON.stringify(site)) continue;
      resolved.push([site.id, { site, remote: replicationRemoteOf(site, this.#o.connectionFor(site)) }]);
    }
    for (const [id, entry] of resolved) this.#remotes.set(id, entry);
  }

  #exists(snapshotId: string): boolean {
    try {
      this.#o.site.tree.getSnapshot(snapshotId);
      return true;
    } catch {
      return false;
    }
  }

  #transferOptions(): SiteTransferOptions {
    return { retries: this.#o.transferRetries, retryDelayMs: this.#o.transferRetryDelayMs };
  }

  /** Starts a NearSync engine per remote site of the domain's eligible schedules (once each), when enabled and the tree has a write log. */
  async #startNearSync(rt: DomainRuntime): Promise<void> {
    const ns = this.#o.nearSync;
    if (ns === undefined || this.#o.site.tree.writeLogStats() === undefined || rt.removed) return;
    const volumeIds = resolveUnits(rt.domain, this.#o).flatMap((u) => u.volumeIds);
    for (const siteId of new Set(rt.domain.schedules.filter((s) => s.nearSyncEligible).flatMap((s) => s.remoteSiteIds))) {
      const key = `${rt.domain.id}/${siteId}`;
      const remote = this.#remotes.get(siteId)?.remote;
      if (this.#nearSync.has(key) || remote === undefined) continue;
      const domainId = rt.domain.id;
      const engine = await NearSyncEngine.open({
        site: this.#o.site, remote, sessionId: nearSyncSessionId(domainId), volumeIds, clock: this.#o.clock, meta: this.#o.meta,
        ...(ns.lwsIntervalMs === undefined ? {} : { lwsIntervalMs: ns.lwsIntervalMs }),
        ...(ns.thresholdMs === undefined ? {} : { thresholdMs: ns.thresholdMs }),
        onEvent: (event) => {
          if (event.kind === 'lws-valid' && event.timeMs !== undefined) rt.lwsValidMs.set(siteId, Math.max(rt.lwsValidMs.get(siteId) ?? -Infinity, event.timeMs));
          this.#emit({ kind: 'nearsync', atMs: event.atMs, domainId, siteId, event });
        },
      });
      if (!this.#started || this.#nearSync.has(key)) continue;
      this.#nearSync.set(key, engine);
      engine.start();
    }
  }

  async #startNearSyncReported(rt: DomainRuntime): Promise<void> {
    await this.#startNearSync(rt).catch((err: unknown) => {
      for (const siteId of new Set(rt.domain.schedules.filter((s) => s.nearSyncEligible).flatMap((s) => s.remoteSiteIds))) {
        this.#emit({ kind: 'nearsync', atMs: this.#o.clock.now(), domainId: rt.domain.id, siteId, event: { kind: 'seed-failed', atMs: this.#o.clock.now(), reason: `NearSync did not start: ${String((err as Error).message)}` } });
      }
    });
  }

  /** NearSync engines running, by `${domainId}/${siteId}`. */
  nearSyncEngines(): ReadonlyMap<string, NearSyncEngine> {
    return new Map(this.#nearSync);
  }

  async #persist(rt: DomainRuntime): Promise<void> {
    if (rt.removed) return;
    try {
      await this.#o.meta.batch([{ kind: 'put', key: domainKey(this.#o.keyPrefix, rt.domain.id), value: encodeDomainRecord(rt.domain, rt.state) }], { sync: true });
    } catch (err) {
      this.#fail(err);
    }
  }

  #fail(err: unknown): never {
    if (this.#failure === undefined) {
      this.#failure = new DrkitError(isDrkitError(err) ? err.code : 'IO_ERROR', 'protector state could not be persisted; reopen the engine', { cause: err, transient: false });
      this.#started = false;
      this.#timer?.cancel();
      this.#timer = undefined;
      this.#abort.abort(this.#failure);
      this.#emit({ kind: 'engine-failed', atMs: this.#o.clock.now(), domainId: '', error: this.#failure });
    }
    throw this.#failure;
  }

  #ensureUsable(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  #emit(event: ProtectorEvent): void {
    try {
      this.#o.onEvent?.(event);
    } catch {
      // A listener's bug must not stop protection.
    }
  }

  /** Counts work for {@link whenIdle}. */
  async #track<T>(fn: () => Promise<T>): Promise<T> {
    this.#active++;
    try {
      return await fn();
    } finally {
      if (--this.#active === 0) for (const w of this.#idleWaiters.splice(0)) w();
    }
  }

  /** Runs work nobody awaits; its failures are already reported as events. */
  #background(work: Promise<void>): void {
    void this.#track(() => work).catch(() => undefined);
  }

  #computeWake(): number {
    let wake = Infinity;
    // With every transfer slot taken, a finishing transfer starts the next one: no timer needed for queued work.
    const slotsFree = this.#transfers < this.#o.concurrency;
    for (const rt of this.#domains.values()) {
      wake = Math.min(wake, rt.nextDueMs);
      if (!slotsFree || rt.state.pending.length === 0) continue;
      for (const item of rt.heads()) if (!rt.busySites.has(item.siteId)) wake = Math.min(wake, item.nextAttemptMs);
    }
    return wake;
  }

  /** (Re)arms the timer for the next wake when started. */
  #arm(force = false): void {
    if (!this.#started || this.#failure !== undefined) return;
    const wake = this.#computeWake();
    if (!force && wake === this.#timerDueMs && this.#timer !== undefined) return;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerDueMs = wake;
    if (wake === Infinity) return;
    this.#timer = this.#o.clock.setTimer(Math.max(0, wake - this.#o.clock.now()), () => {
      this.#timer = undefined;
      this.#timerDueMs = Infinity;
      void this.#timedPass();
    });
  }

  async #timedPass(): Promise<void> {
    if (this.#passRunning) {
      this.#passAgain = true;
      return;
    }
    this.#passRunning = true;
    try {
      do {
        this.#passAgain = false;
        await this.tick().catch(() => undefined); // failures are reported as events
      } while (this.#passAgain && this.#started);
    } finally {
      this.#passRunning = false;
      this.#arm();
    }
  }
}
