/**
 * Migrate: a controlled failover of a volume lineage from the site that writes it (the
 * source) to a replica site (the target), as ONE resumable operation with a dry-run plan.
 *
 * Steps: stop writes on the source volume, take the final snapshot, replicate it, demote
 * the source (it stops writing the lineage), promote the target at generation + 1 — over
 * the protocol (PROMOTE_REQ, idempotent: the target needs nothing but its address), or
 * through its Site object when the caller holds it — and record the reversed direction. The operation's state is persisted (synced) in the
 * source site's MetaStore under `mg/` after every step, so a failure or a crash of either
 * side stops it in a recorded state: {@link resumeMigration} continues from the first step
 * not recorded as completed (every step is idempotent), {@link rollbackMigration} undoes
 * it at any step, asking a promoted target to give the lineage back (DEMOTE_REQ) as long
 * as it has not written it since. {@link migrateGroup} (migrate-group.ts) moves a
 * consistency group the same way, as one unit.
 *
 * No-data-loss promise: every write acknowledged on the source volume before the
 * stop-writes step is in the final snapshot, and so at the target. Writes are stopped by
 * the caller's `stopWrites` hook and by closing the `sourceVolume` handle (later writes
 * through it fail with NOT_OPEN); volume writes and snapshots share the tree's FIFO mutex,
 * so a write in flight at the stop lands before the snapshot. Before the source is
 * demoted its volume is checked against the final snapshot: if anything wrote after the
 * stop (another handle, a restart), the demotion is refused with DIVERGED and the
 * migration goes back to retake the final snapshot on resume.
 */
import { DrkitError } from '../core/errors.js';
import type { MetaStore } from '../adapters/meta-store.js';
import type { Volume } from '../snapshot/index.js';
import { demote, lineageStatus, promote, snapshotPromoted, type PromoteOptions } from './failover.js';
import { deleteLineageRecord, readLineageRecord, writeLineageRecord } from './lineage-record.js';
import { originKey, originOf } from './origin.js';
import { writtenSince } from './internal/unchanged-since.js';
import { runMigrationSteps } from './internal/migration-runner.js';
import { demoteForPeer } from './remote-control.js';
import type { RemoteSite, Site, SiteTransferOptions } from './site.js';
import { MIGRATION_STEPS, MIGRATION_STEP_INDEX, readMigrationRecord, writeMigrationRecord, type MigrationRecord, type MigrationStepKind } from './internal/migration-record.js';

export { MIGRATION_STEPS, MIGRATION_RECORD_PREFIX, type MigrationRecord, type MigrationStepKind } from './internal/migration-record.js';

/** What to migrate, and where. */
export interface MigrationOptions {
  /** The site that writes the lineage now. */
  readonly source: Site;
  /** The replica site that will write it. */
  readonly target: RemoteSite;
  /** The lineage (volumeKey) to move. */
  readonly lineage: string;
  /** The target's writable volume: a new clone by name, or an existing volume reverted in place. @defaultValue `{ name: <the source volume's name> }` */
  readonly targetVolume?: PromoteOptions;
  /** Name of the final snapshot. @defaultValue 'migrate-final' */
  readonly finalSnapshotName?: string;
}

/** One step of a plan. */
export interface MigrationStep {
  readonly kind: MigrationStepKind;
  /** Where the step acts. */
  readonly runsAt: 'source' | 'target';
  readonly description: string;
}

/** A dry-run plan: what {@link migrate} would do, in order. Pure data. */
export interface MigrationPlan {
  readonly lineage: string;
  readonly sourceSiteId: string;
  readonly targetSiteId: string;
  readonly sourceVolumeId: string;
  readonly sourceGeneration: number;
  /** The generation the target will write at (at least; the target's own knowledge may raise it). */
  readonly targetGeneration: number;
  readonly targetVolume: { readonly name?: string; readonly volumeId?: string };
  readonly steps: readonly MigrationStep[];
}

/** How to run a migration. */
export interface MigrateRunOptions extends SiteTransferOptions {
  /** Where the operation state lives. @defaultValue the source site's MetaStore */
  readonly stateStore?: MetaStore;
  /**
   * The target Site object, when it is in the same process: the promote step then runs on
   * it directly, and the completed record is copied to its MetaStore. Without it the step
   * asks the target by address (PROMOTE_REQ). @defaultValue undefined (promote by address)
   */
  readonly targetSite?: Site;
  /** Quiesce hook: stop the application's writes (must be idempotent: a resume runs it again if its completion was not recorded). */
  readonly stopWrites?: (options: { signal?: AbortSignal }) => Promise<void>;
  /** A handle to the source volume that is closed at the stop, so later writes through it fail with NOT_OPEN. */
  readonly sourceVolume?: Volume;
  /** A plan from {@link planMigration}; migrate refuses it when the sites' state moved on since. */
  readonly plan?: MigrationPlan;
  /** Called after each step is durably recorded; a throw stops the migration there (resumable). */
  readonly onStep?: (step: MigrationStepKind, record: MigrationRecord) => void | Promise<void>;
}

/** Where a migration stands. */
export interface MigrationResult {
  /** A migration that stops early throws instead (`data.state: 'resumable'`, `data.step`). */
  readonly state: 'completed' | 'rolled-back';
  /** Completed: the last step. Rolled back: the first step that was undone or never ran. */
  readonly step: MigrationStepKind;
  readonly record: MigrationRecord;
}

const STEP_INDEX = MIGRATION_STEP_INDEX;

/**
 * The dry-run plan of migrating `lineage` from `source` to `target`: reads only.
 * @throws INVALID_ARGUMENT (same site, bad lineage), NOT_FOUND (the source does not write the lineage)
 */
export async function planMigration(options: MigrationOptions): Promise<MigrationPlan> {
  const { source, target, lineage } = options;
  if (target.siteId === source.siteId) throw new DrkitError('INVALID_ARGUMENT', 'migrate needs two different sites', { data: { field: 'target' } });
  const status = await lineageStatus(source, lineage);
  if (status.writableVolumeId === undefined) throw new DrkitError('NOT_FOUND', `site ${source.siteId} does not write lineage ${lineage}`, { data: { lineage } });
  const sourceVolumeId = status.writableVolumeId;
  const targetVolume = options.targetVolume ?? { name: source.tree.getVolume(sourceVolumeId).name };
  if ((targetVolume.name === undefined) === (targetVolume.volumeId === undefined)) {
    throw new DrkitError('INVALID_ARGUMENT', 'targetVolume needs exactly one of name and volumeId', { data: { field: 'targetVolume' } });
  }
  const g = status.generation;
  const into = targetVolume.name !== undefined ? `new volume "${targetVolume.name}"` : `volume ${targetVolume.volumeId} reverted in place`;
  const steps: MigrationStep[] = [
    { kind: 'stop-writes', runsAt: 'source', description: `stop writes on ${source.siteId} volume ${sourceVolumeId} (stopWrites hook, close the sourceVolume handle)` },
    { kind: 'final-snapshot', runsAt: 'source', description: `take the final snapshot "${options.finalSnapshotName ?? 'migrate-final'}" of volume ${sourceVolumeId} at generation ${g}` },
    { kind: 'replicate', runsAt: 'source', description: `replicate the final snapshot to ${target.siteId} (incremental, resumable)` },
    { kind: 'demote-source', runsAt: 'source', description: `check volume ${sourceVolumeId} is unchanged since the final snapshot, then demote ${source.siteId}: it stops writing ${lineage}` },
    { kind: 'promote-target', runsAt: 'target', description: `promote the final snapshot at ${target.siteId} into ${into}, generation ${g + 1} (PROMOTE_REQ to ${target.address}, or its Site object)` },
    { kind: 'reverse-direction', runsAt: 'source', description: `record ${target.siteId} as primary and ${source.siteId} as its replica` },
  ];
  return Object.freeze({ lineage, sourceSiteId: source.siteId, targetSiteId: target.siteId, sourceVolumeId, sourceGeneration: g, targetGeneration: g + 1, targetVolume, steps: Object.freeze(steps) });
}

/**
 * Runs a migration from the start (see the module header). Resolves `completed`.
 * @throws ALREADY_EXISTS (a migration of the lineage is under way: resume or roll it back),
 *   INVALID_ARGUMENT (a stale plan), {@link planMigration}'s codes; a failing step throws its
 *   own code with `data.state === 'resumable'` and `data.step` (the step to resume at)
 */
export async function migrate(options: MigrationOptions, run: MigrateRunOptions = {}): Promise<MigrationResult> {
  const store = run.stateStore ?? options.source.meta;
  const existing = await readMigrationRecord(store, options.lineage);
  if (existing?.status === 'running') {
    throw new DrkitError('ALREADY_EXISTS', `a migration of ${options.lineage} is under way (next step ${MIGRATION_STEPS[existing.completedSteps]}): resume or roll it back`, {
      data: { lineage: options.lineage, state: 'resumable', step: MIGRATION_STEPS[existing.completedSteps] },
    });
  }
  const plan = await planMigration(options);
  if (run.plan !== undefined) {
    const p = run.plan;
    if (p.lineage !== plan.lineage || p.sourceSiteId !== plan.sourceSiteId || p.targetSiteId !== plan.targetSiteId || p.sourceVolumeId !== plan.sourceVolumeId || p.sourceGeneration !== plan.sourceGeneration) {
      throw new DrkitError('INVALID_ARGUMENT', 'the plan is stale: the sites moved on since it was made', { data: { field: 'plan' } });
    }
  }
  const record: MigrationRecord = {
    formatVersion: 1,
    lineage: plan.lineage,
    sourceSiteId: plan.sourceSiteId,
    targetSiteId: plan.targetSiteId,
    sourceVolumeId: plan.sourceVolumeId,
    sourceGeneration: plan.sourceGeneration,
    targetVolume: plan.targetVolume,
    status: 'running',
    completedSteps: 0,
    startedStep: undefined,
    finalSnapshotId: undefined,
    remoteSnapshotId: undefined,
    // Read before anything changes: what a rollback puts back (null = no record, own lineage).
    previousLineageRecord: (await readLineageRecord(options.source.meta, plan.lineage)) ?? null,
    targetGeneration: undefined,
    targetVolumeId: undefined,
    primarySiteId: undefined,
    replicaSiteId: undefined,
    lastError: undefined,
  };
  await writeMigrationRecord(store, record);
  return execute(options, run, store, record);
}

/**
 * Continues the migration of `lineage` recorded in the state store from its first step
 * not recorded as completed. A completed or rolled-back migration resolves as such.
 * @throws NOT_FOUND (no migration recorded), INVALID_ARGUMENT (other sites than recorded), and the steps' codes as {@link migrate}
 */
export async function resumeMigration(options: MigrationOptions, run: MigrateRunOptions = {}): Promise<MigrationResult> {
  const store = run.stateStore ?? options.source.meta;
  const record = await readMigrationRecord(store, options.lineage);
  if (record === undefined) throw new DrkitError('NOT_FOUND', `no migration of ${options.lineage} is recorded`, { data: { lineage: options.lineage } });
  if (record.sourceSiteId !== options.source.siteId || record.targetSiteId !== options.target.siteId) {
    throw new DrkitError('INVALID_ARGUMENT', `the migration of ${options.lineage} runs from ${record.sourceSiteId} to ${record.targetSiteId}`, { data: { field: 'target' } });
  }
  if (record.status === 'completed') return { state: 'completed', step: 'reverse-direction', record };
  if (record.status === 'rolled-back') return { state: 'rolled-back', step: MIGRATION_STEPS[Math.min(record.completedSteps, MIGRATION_STEPS.length - 1)]!, record };
  return execute(options, run, store, record);
}

/**
 * Undoes a migration at any step: the source writes the lineage again at its own
 * generation (its lineage record is put back). Once the promote step may have run, the
 * target is first asked to give the lineage back (DEMOTE_REQ by address, or through
 * `targetSite`): it refuses when it wrote the lineage since its promotion, and answers as
 * done when it was never promoted, so a rollback is idempotent too. The final snapshot
 * stays at both sites (it is a valid replica). The caller reopens the source volume for writes.
 * @throws NOT_FOUND (no migration recorded, or the source volume is gone), INVALID_ARGUMENT
 *   (the promote step may have run and no `target` (address) or `targetSite` was given),
 *   and the target's demotion codes (DIVERGED: it wrote since the promotion; STALE_GENERATION,
 *   AUTH_FAILED), with the migration left as it was
 */
export async function rollbackMigration(options: { source: Site; lineage: string; target?: RemoteSite }, run: { stateStore?: MetaStore; targetSite?: Site } & SiteTransferOptions = {}): Promise<MigrationResult> {
  const { source, lineage } = options;
  const store = run.stateStore ?? source.meta;
  const record = await readMigrationRecord(store, lineage);
  if (record === undefined) throw new DrkitError('NOT_FOUND', `no migration of ${lineage} is recorded`, { data: { lineage } });
  const next = MIGRATION_STEPS[Math.min(record.completedSteps, MIGRATION_STEPS.length - 1)]!;
  if (record.status === 'rolled-back') return { state: 'rolled-back', step: next, record };
  if (record.completedSteps >= STEP_INDEX['promote-target']) {
    // The promotion may have run at the target (recorded, or a crash before the record).
    const { stateStore: _store, targetSite, ...transfer } = run;
    const member = { lineage, originSnapshotId: record.finalSnapshotId!, sourceGeneration: record.sourceGeneration };
    if (targetSite !== undefined) {
      if (targetSite.siteId !== record.targetSiteId) throw new DrkitError('INVALID_ARGUMENT', `targetSite is ${targetSite.siteId}, not ${record.targetSiteId}`, { data: { field: 'targetSite' } });
      await demoteForPeer(targetSite, source.siteId, [member]);
    } else if (options.target !== undefined) {
      await source.demoteRemote(options.target, [member], transfer);
    } else {
      throw new DrkitError('INVALID_ARGUMENT', `the target ${record.targetSiteId} may have been promoted: pass target (its address) or targetSite to demote it before rolling back`, { data: { field: 'target', lineage } });
    }
  }
  if (record.completedSteps > STEP_INDEX['demote-source'] || record.startedStep === 'demote-source') {
    const previous = record.previousLineageRecord;
    if (previous === null || previous === undefined) await deleteLineageRecord(source.meta, lineage);
    else await writeLineageRecord(source.meta, previous);
  }
  const status = await lineageStatus(source, lineage);
  if (status.writableVolumeId !== record.sourceVolumeId) {
    throw new DrkitError('NOT_FOUND', `volume ${record.sourceVolumeId} of ${source.siteId} is gone: nothing to roll back to`, { data: { lineage, volumeId: record.sourceVolumeId } });
  }
  const rolled: MigrationRecord = { ...record, status: 'rolled-back', startedStep: undefined };
  await writeMigrationRecord(store, rolled);
  return { state: 'rolled-back', step: next, record: rolled };
}

async function execute(options: MigrationOptions, run: MigrateRunOptions, store: MetaStore, start: MigrationRecord): Promise<MigrationResult> {
  const record = await runMigrationSteps(start, {
    write: (r) => writeMigrationRecord(store, r),
    run: (step, r) => runStep(step, options, run, r),
    restartFromFinalSnapshot: (r) => ({ ...r, finalSnapshotId: undefined, remoteSnapshotId: undefined }),
    afterStep: async (step, r) => {
      if (step === 'reverse-direction' && run.targetSite !== undefined && run.targetSite.meta !== store) await writeMigrationRecord(run.targetSite.meta, r);
      await run.onStep?.(step, r);
    },
    what: `migration of ${options.lineage}`,
    resumeWith: 'resumeMigration',
    data: { lineage: options.lineage },
    signal: run.signal,
  });
  return { state: 'completed', step: 'reverse-direction', record };
}

async function runStep(step: MigrationStepKind, options: MigrationOptions, run: MigrateRunOptions, record: MigrationRecord): Promise<Partial<MigrationRecord>> {
  const { source, target, lineage } = options;
  const signalOption = run.signal === undefined ? {} : { signal: run.signal };
  switch (step) {
    case 'stop-writes': {
      await run.stopWrites?.(signalOption);
      await run.sourceVolume?.close();
      // Volume writes are durable only after a flush: make every acknowledged one survive a
      // crash of the source before the final snapshot is taken.
      await source.tree.flush(signalOption);
      return {};
    }
    case 'final-snapshot': {
      const status = await lineageStatus(source, lineage);
      if (status.writableVolumeId !== record.sourceVolumeId) {
        throw new DrkitError('DIVERGED', `site ${source.siteId} no longer writes ${lineage} through volume ${record.sourceVolumeId}`, { data: { lineage } });
      }
      const snapshot = await snapshotPromoted(source, lineage, { name: options.finalSnapshotName ?? 'migrate-final' });
      return { finalSnapshotId: snapshot.id };
    }
    case 'replicate': {
      const final = source.tree.getSnapshot(record.finalSnapshotId!);
      // A crash after the transfer but before its record: the target already holds it. Asking
      // first skips the transfer's LIST/BEGIN round (replicating it again would also just
      // answer with the held snapshot: every transfer ends in a commit).
      const key = originKey(originOf(final, source.siteId));
      const held = (await source.listRemote(target, lineage, run)).find((h) => `${h.originSiteId}/${h.originSnapshotId}` === key);
      if (held !== undefined) return { remoteSnapshotId: held.snapshotId };
      const result = await source.replicate(final.id, target, run);
      return { remoteSnapshotId: result.remoteSnapshotIds[0] };
    }
    case 'demote-source': {
      const status = await lineageStatus(source, lineage);
      if (status.writableVolumeId === record.sourceVolumeId) {
        const changed = await writtenSince(source.tree, record.sourceVolumeId, record.finalSnapshotId!, lineage, record.sourceGeneration, signalOption);
        if (changed) {
          throw new DrkitError('DIVERGED', `volume ${record.sourceVolumeId} was written after the final snapshot: writes were not stopped; resume retakes the final snapshot`, {
            data: { lineage, volumeId: record.sourceVolumeId, restartFromFinalSnapshot: true },
          });
        }
      }
      await demote(source, lineage, { force: true });
      return {};
    }
    case 'promote-target': {
      if (run.targetSite === undefined) {
        // By address: the target checks that we are the lineage's last writer and that it
        // holds the final snapshot, and answers a repeated request as done.
        const [promoted] = await source.promoteRemote(target, [{ lineage, originSnapshotId: record.finalSnapshotId!, sourceGeneration: record.sourceGeneration, ...remoteVolume(record.targetVolume) }], run);
        return { targetGeneration: promoted!.generation, targetVolumeId: promoted!.volumeId };
      }
      const site = run.targetSite;
      if (site.siteId !== record.targetSiteId) throw new DrkitError('INVALID_ARGUMENT', `targetSite is ${site.siteId}, not ${record.targetSiteId}`, { data: { field: 'targetSite' } });
      const status = await lineageStatus(site, lineage);
      // Promoted before a crash kept the record from saying so.
      if (status.writableVolumeId !== undefined && status.generation > record.sourceGeneration) return { targetGeneration: status.generation, targetVolumeId: status.writableVolumeId };
      const promotion = await promote(site, record.remoteSnapshotId!, record.targetVolume);
      await promotion.volume.close();
      return { targetGeneration: promotion.generation, targetVolumeId: promotion.volume.id };
    }
    case 'reverse-direction':
      return { primarySiteId: record.targetSiteId, replicaSiteId: record.sourceSiteId };
  }
}

function remoteVolume(v: MigrationRecord['targetVolume']): { volumeName: string } | { volumeId: string } {
  return v.volumeId !== undefined ? { volumeId: v.volumeId } : { volumeName: v.name! };
}

/**
 * The migration recorded for `lineage` in `meta` (a site's MetaStore), if any: its state,
 * and after completion which site is primary.
 * @throws CORRUPTION, FORMAT_VERSION for an unreadable record
 */
export async function readMigration(meta: MetaStore, lineage: string): Promise<MigrationRecord | undefined> {
  return readMigrationRecord(meta, lineage);
}
