/**
 * Migrate a consistency group: a controlled failover of several lineages the source writes
 * (the volumes of one consistency group of a protection domain) to a replica site, as ONE
 * resumable operation over nothing but the target's address.
 *
 * Steps (MIGRATION_STEPS, each for every member at once): stop writes on all members; take
 * ONE group snapshot (`SnapshotTree.snapshotGroup`: one commit, crash-consistent across the
 * members); replicate every member's final snapshot (one group transfer, committed
 * together); check no member was written since, then demote all at the source (one synced
 * batch of lineage records); promote all at the target with ONE PROMOTE_REQ (the target
 * promotes all or none); record the reversed direction.
 *
 * Durability promise: one record covers every member (`mgg/<groupId>` in the source's
 * MetaStore), written synced before and after every step, and every step is idempotent,
 * so a crash of either side at any step resumes to completion ({@link resumeGroupMigration}).
 * Atomicity promise: the target never writes some members and not others — its promotion
 * of the group is one synced batch, and so is a rollback's demotion there (DEMOTE_REQ):
 * {@link rollbackGroupMigration} puts every member back at the source, at any step, as
 * long as the target wrote none of them since its promotion.
 *
 * No-data-loss promise: as {@link migrate}'s, for every member: writes acknowledged before
 * the stop are in the group snapshot; a member written after it stops the demotion
 * (DIVERGED) and resume retakes the group snapshot.
 */
import { DrkitError } from '../core/errors.js';
import { utf8 } from '../core/bytes.js';
import type { MetaStore } from '../adapters/meta-store.js';
import type { Volume } from '../snapshot/index.js';
import { lineageStatus, type PromoteOptions } from './failover.js';
import { LINEAGE_RECORD_PREFIX, readLineageRecord, writeLineageRecords, type LineageRecord } from './lineage-record.js';
import { GENERATION_KEY, LINEAGE_KEY, originKey, originOf } from './origin.js';
import type { RemoteSite, Site, SiteTransferOptions } from './site.js';
import type { MigrationResult } from './migrate.js';
import { writtenSince } from './internal/unchanged-since.js';
import { runMigrationSteps } from './internal/migration-runner.js';
import { MIGRATION_STEPS, MIGRATION_STEP_INDEX, type MigrationStepKind } from './internal/migration-record.js';
import { readGroupMigrationRecord, writeGroupMigrationRecord, type GroupMigrationMember, type GroupMigrationRecord } from './internal/group-migration-record.js';

export { GROUP_MIGRATION_RECORD_PREFIX, type GroupMigrationMember, type GroupMigrationRecord } from './internal/group-migration-record.js';

/** Members per group: one PROMOTE_REQ (and one COMMIT_REQ) carries at most 256. */
export const MAX_GROUP_MEMBERS = 256;

/** What to migrate, and where. */
export interface GroupMigrationOptions {
  /** The site that writes every member now. */
  readonly source: Site;
  /** The replica site that will write them. */
  readonly target: RemoteSite;
  /** Names the migration record (e.g. the policy's ConsistencyGroup id); one migration per group at a time. */
  readonly groupId: string;
  /** The members' lineages (volumeKeys), 1 to {@link MAX_GROUP_MEMBERS}, no repeats. */
  readonly lineages: readonly string[];
  /** Per lineage: the target's writable volume. @defaultValue `{ name: <the source volume's name> }` for each */
  readonly targetVolumes?: Readonly<Record<string, PromoteOptions>>;
  /** Name of the group snapshot. @defaultValue 'migrate-final' */
  readonly finalSnapshotName?: string;
}

/** How to run a group migration. */
export interface GroupMigrateRunOptions extends SiteTransferOptions {
  /** Where the operation state lives. @defaultValue the source site's MetaStore */
  readonly stateStore?: MetaStore;
  /** Quiesce hook: stop the application's writes to every member (must be idempotent). */
  readonly stopWrites?: (options: { signal?: AbortSignal }) => Promise<void>;
  /** Handles to member volumes that are closed at the stop, so later writes through them fail with NOT_OPEN. */
  readonly sourceVolumes?: readonly Volume[];
  /** Called after each step is durably recorded; a throw stops the migration there (resumable). */
  readonly onStep?: (step: MigrationStepKind, record: GroupMigrationRecord) => void | Promise<void>;
}

/** Where a group migration stands: as {@link MigrationResult}, with the group's record. */
export type GroupMigrationResult = Omit<MigrationResult, 'record'> & { readonly record: GroupMigrationRecord };

const STEP_INDEX = MIGRATION_STEP_INDEX;

/**
 * Runs a group migration from the start (see the module header). Resolves `completed`.
 * @throws INVALID_ARGUMENT (same site, no or repeated or too many lineages, a bad target volume),
 *   NOT_FOUND (the source does not write a member), ALREADY_EXISTS (a migration of the group
 *   is under way: resume or roll it back); a failing step throws its own code with
 *   `data.state === 'resumable'` and `data.step` (the step to resume at)
 */
export async function migrateGroup(options: GroupMigrationOptions, run: GroupMigrateRunOptions = {}): Promise<GroupMigrationResult> {
  const { source, target, groupId, lineages } = options;
  const store = run.stateStore ?? source.meta;
  const existing = await readGroupMigrationRecord(store, groupId);
  if (existing?.status === 'running') {
    throw new DrkitError('ALREADY_EXISTS', `a migration of group ${groupId} is under way (next step ${MIGRATION_STEPS[existing.completedSteps]}): resume or roll it back`, {
      data: { groupId, state: 'resumable', step: MIGRATION_STEPS[existing.completedSteps] },
    });
  }
  if (target.siteId === source.siteId) throw new DrkitError('INVALID_ARGUMENT', 'migrate needs two different sites', { data: { field: 'target' } });
  if (lineages.length === 0 || lineages.length > MAX_GROUP_MEMBERS || new Set(lineages).size !== lineages.length) {
    throw new DrkitError('INVALID_ARGUMENT', `a group migration needs 1 to ${MAX_GROUP_MEMBERS} distinct lineages`, { data: { field: 'lineages' } });
  }
  const members: GroupMigrationMember[] = [];
  for (const lineage of lineages) {
    const status = await lineageStatus(source, lineage);
    if (status.writableVolumeId === undefined) throw new DrkitError('NOT_FOUND', `site ${source.siteId} does not write lineage ${lineage}`, { data: { lineage } });
    const targetVolume = options.targetVolumes?.[lineage] ?? { name: source.tree.getVolume(status.writableVolumeId).name };
    if ((targetVolume.name === undefined) === (targetVolume.volumeId === undefined)) {
      throw new DrkitError('INVALID_ARGUMENT', `targetVolumes[${lineage}] needs exactly one of name and volumeId`, { data: { field: 'targetVolumes', lineage } });
    }
    members.push({
      lineage,
      sourceVolumeId: status.writableVolumeId,
      sourceGeneration: status.generation,
      targetVolume,
      // Read before anything changes: what a rollback puts back (null = no record, own lineage).
      previousLineageRecord: (await readLineageRecord(source.meta, lineage)) ?? null,
    });
  }
  const record: GroupMigrationRecord = { formatVersion: 1, groupId, sourceSiteId: source.siteId, targetSiteId: target.siteId, members, status: 'running', completedSteps: 0 };
  await writeGroupMigrationRecord(store, record);
  return execute(options, run, store, record);
}

/**
 * Continues the migration of group `groupId` from its first step not recorded as
 * completed. A completed or rolled-back migration resolves as such. `options.lineages` is
 * not read: the record names the members.
 * @throws NOT_FOUND (no migration recorded), INVALID_ARGUMENT (other sites than recorded), and the steps' codes as {@link migrateGroup}
 */
export async function resumeGroupMigration(options: Omit<GroupMigrationOptions, 'lineages'>, run: GroupMigrateRunOptions = {}): Promise<GroupMigrationResult> {
  const store = run.stateStore ?? options.source.meta;
  const record = await recorded(store, options.groupId);
  if (record.sourceSiteId !== options.source.siteId || record.targetSiteId !== options.target.siteId) {
    throw new DrkitError('INVALID_ARGUMENT', `the migration of group ${options.groupId} runs from ${record.sourceSiteId} to ${record.targetSiteId}`, { data: { field: 'target' } });
  }
  if (record.status === 'completed') return { state: 'completed', step: 'reverse-direction', record };
  if (record.status === 'rolled-back') return { state: 'rolled-back', step: stepAt(record), record };
  return execute({ ...options, lineages: record.members.map((m) => m.lineage) }, run, store, record);
}

/**
 * Undoes a group migration at any step: every member is written by the source again at
 * its own generation. Once the promote step may have run, the target is first asked to
 * give every member back with ONE DEMOTE_REQ (all or none; answered as done where it was
 * never promoted). The caller reopens the source volumes for writes.
 * @throws NOT_FOUND (no migration recorded, or a source volume is gone), and the target's
 *   demotion codes (DIVERGED: it wrote a member since the promotion; STALE_GENERATION,
 *   AUTH_FAILED), with the migration left as it was
 */
export async function rollbackGroupMigration(options: { source: Site; target: RemoteSite; groupId: string }, run: { stateStore?: MetaStore } & SiteTransferOptions = {}): Promise<GroupMigrationResult> {
  const { source, groupId } = options;
  const { stateStore, ...transfer } = run;
  const store = stateStore ?? source.meta;
  const record = await recorded(store, groupId);
  if (record.status === 'rolled-back') return { state: 'rolled-back', step: stepAt(record), record };
  if (record.completedSteps >= STEP_INDEX['promote-target']) {
    await source.demoteRemote(options.target, record.members.map((m) => ({ lineage: m.lineage, originSnapshotId: m.finalSnapshotId!, sourceGeneration: m.sourceGeneration })), transfer);
  }
  if (record.completedSteps > STEP_INDEX['demote-source'] || record.startedStep === 'demote-source') {
    // Every member's record back in one synced batch.
    await source.meta.batch(
      record.members.map((m) =>
        m.previousLineageRecord === null
          ? { kind: 'del' as const, key: utf8(LINEAGE_RECORD_PREFIX + m.lineage) }
          : { kind: 'put' as const, key: utf8(LINEAGE_RECORD_PREFIX + m.lineage), value: utf8(JSON.stringify(m.previousLineageRecord)) },
      ),
      { sync: true },
    );
  }
  for (const m of record.members) {
    if ((await lineageStatus(source, m.lineage)).writableVolumeId !== m.sourceVolumeId) {
      throw new DrkitError('NOT_FOUND', `volume ${m.sourceVolumeId} of ${source.siteId} is gone: nothing to roll back to`, { data: { lineage: m.lineage, volumeId: m.sourceVolumeId } });
    }
  }
  const { startedStep: _started, ...rest } = record;
  const rolled: GroupMigrationRecord = { ...rest, status: 'rolled-back' };
  await writeGroupMigrationRecord(store, rolled);
  return { state: 'rolled-back', step: stepAt(rolled), record: rolled };
}

/**
 * The group migration recorded for `groupId` in `meta` (a site's MetaStore), if any.
 * @throws CORRUPTION, FORMAT_VERSION for an unreadable record
 */
export async function readGroupMigration(meta: MetaStore, groupId: string): Promise<GroupMigrationRecord | undefined> {
  return readGroupMigrationRecord(meta, groupId);
}

async function recorded(store: MetaStore, groupId: string): Promise<GroupMigrationRecord> {
  const record = await readGroupMigrationRecord(store, groupId);
  if (record === undefined) throw new DrkitError('NOT_FOUND', `no migration of group ${groupId} is recorded`, { data: { groupId } });
  return record;
}

function stepAt(record: GroupMigrationRecord): MigrationStepKind {
  return MIGRATION_STEPS[Math.min(record.completedSteps, MIGRATION_STEPS.length - 1)]!;
}

async function execute(options: GroupMigrationOptions, run: GroupMigrateRunOptions, store: MetaStore, start: GroupMigrationRecord): Promise<GroupMigrationResult> {
  const record = await runMigrationSteps(start, {
    write: (r) => writeGroupMigrationRecord(store, r),
    run: (step, r) => runStep(step, options, run, r),
    restartFromFinalSnapshot: (r) => ({ ...r, members: r.members.map(({ finalSnapshotId: _f, remoteSnapshotId: _r, ...m }) => m) }),
    afterStep: (step, r) => run.onStep?.(step, r),
    what: `migration of group ${options.groupId}`,
    resumeWith: 'resumeGroupMigration',
    data: { groupId: options.groupId },
    signal: run.signal,
  });
  return { state: 'completed', step: 'reverse-direction', record };
}

async function runStep(step: MigrationStepKind, options: GroupMigrationOptions, run: GroupMigrateRunOptions, record: GroupMigrationRecord): Promise<Partial<GroupMigrationRecord>> {
  const { source, target } = options;
  const signalOption = run.signal === undefined ? {} : { signal: run.signal };
  const members = record.members;
  switch (step) {
    case 'stop-writes': {
      await run.stopWrites?.(signalOption);
      for (const v of run.sourceVolumes ?? []) await v.close();
      // Make every acknowledged write survive a crash of the source before the group snapshot.
      await source.tree.flush(signalOption);
      return {};
    }
    case 'final-snapshot': {
      for (const m of members) {
        if ((await lineageStatus(source, m.lineage)).writableVolumeId !== m.sourceVolumeId) {
          throw new DrkitError('DIVERGED', `site ${source.siteId} no longer writes ${m.lineage} through volume ${m.sourceVolumeId}`, { data: { lineage: m.lineage } });
        }
      }
      // ONE commit for every member: the group is crash-consistent at the target too.
      const snapshots = await source.tree.snapshotGroup(
        members.map((m) => m.sourceVolumeId),
        {
          name: options.finalSnapshotName ?? 'migrate-final',
          userMetadataByVolume: Object.fromEntries(members.map((m) => [m.sourceVolumeId, { [LINEAGE_KEY]: m.lineage, [GENERATION_KEY]: String(m.sourceGeneration) }])),
        },
      );
      return { members: members.map((m, i) => ({ ...m, finalSnapshotId: snapshots[i]!.id })) };
    }
    case 'replicate': {
      // A crash after the transfer but before its record: the target holds them already.
      const held: (string | undefined)[] = [];
      for (const m of members) {
        const key = originKey(originOf(source.tree.getSnapshot(m.finalSnapshotId!), source.siteId));
        held.push((await source.listRemote(target, m.lineage, run)).find((h) => `${h.originSiteId}/${h.originSnapshotId}` === key)?.snapshotId);
      }
      if (held.every((id) => id !== undefined)) return { members: members.map((m, i) => ({ ...m, remoteSnapshotId: held[i]! })) };
      const result = await source.replicate(members.map((m) => m.finalSnapshotId!), target, run);
      return { members: members.map((m, i) => ({ ...m, remoteSnapshotId: result.remoteSnapshotIds[i]! })) };
    }
    case 'demote-source': {
      const records: LineageRecord[] = [];
      for (const m of members) {
        const status = await lineageStatus(source, m.lineage);
        if (status.writableVolumeId !== m.sourceVolumeId) continue; // demoted already
        if (await writtenSince(source.tree, m.sourceVolumeId, m.finalSnapshotId!, m.lineage, m.sourceGeneration, signalOption)) {
          throw new DrkitError('DIVERGED', `volume ${m.sourceVolumeId} was written after the group snapshot: writes were not stopped; resume retakes the group snapshot`, {
            data: { lineage: m.lineage, volumeId: m.sourceVolumeId, restartFromFinalSnapshot: true },
          });
        }
        const previous = await readLineageRecord(source.meta, m.lineage);
        records.push({ formatVersion: 1, lineage: m.lineage, generation: status.generation, role: 'replica', volumeId: m.sourceVolumeId, promotedFromSnapshotId: previous?.promotedFromSnapshotId });
      }
      if (records.length > 0) await writeLineageRecords(source.meta, records);
      return {};
    }
    case 'promote-target': {
      // ONE request: the target promotes every member or none, and answers a repeat as done.
      const promoted = await source.promoteRemote(
        target,
        members.map((m) => ({
          lineage: m.lineage,
          originSnapshotId: m.finalSnapshotId!,
          sourceGeneration: m.sourceGeneration,
          ...(m.targetVolume.volumeId !== undefined ? { volumeId: m.targetVolume.volumeId } : { volumeName: m.targetVolume.name! }),
        })),
        run,
      );
      return { members: members.map((m, i) => ({ ...m, targetGeneration: promoted[i]!.generation, targetVolumeId: promoted[i]!.volumeId })) };
    }
    case 'reverse-direction':
      return { primarySiteId: record.targetSiteId, replicaSiteId: record.sourceSiteId };
  }
}
