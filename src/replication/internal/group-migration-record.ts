/**
 * Durable state of one consistency-group migration (see ../migrate-group.ts): ONE record
 * for every member, in the source site's MetaStore under `mgg/`, keyed by the group id.
 * Written with a synced batch before and after every step, so a crash of either side
 * leaves a record from which the whole group resumes or rolls back.
 */
import { DrkitError } from '../../core/errors.js';
import { utf8 } from '../../core/bytes.js';
import type { MetaStore } from '../../adapters/meta-store.js';
import type { LineageRecord } from '../lineage-record.js';
import type { MigrationStepKind } from './migration-record.js';

/** MetaStore key prefix of group migration records (beside single migrations' `mg/`). */
export const GROUP_MIGRATION_RECORD_PREFIX = 'mgg/';

/** One member of a group migration: a lineage the source writes, and what each step made of it. */
export interface GroupMigrationMember {
  readonly lineage: string;
  /** The volume through which the source wrote the lineage. */
  readonly sourceVolumeId: string;
  /** The lineage generation the source wrote at. */
  readonly sourceGeneration: number;
  /** How the target's writable volume is made: a new clone (`name`) or a volume reverted in place (`volumeId`). */
  readonly targetVolume: { readonly name?: string; readonly volumeId?: string };
  /** The source's lineage record before the demotion (`null`: it had none); what a rollback puts back. */
  readonly previousLineageRecord: LineageRecord | null;
  /** The member's snapshot of the one group snapshot. */
  readonly finalSnapshotId?: string;
  /** The final snapshot's id at the target. */
  readonly remoteSnapshotId?: string;
  readonly targetGeneration?: number;
  readonly targetVolumeId?: string;
}

/** The persisted state of a group migration. */
export interface GroupMigrationRecord {
  readonly formatVersion: 1;
  readonly groupId: string;
  readonly sourceSiteId: string;
  readonly targetSiteId: string;
  /** In the caller's order; every step acts on all of them. */
  readonly members: readonly GroupMigrationMember[];
  /** `running` until the last step completed or the migration was rolled back. */
  readonly status: 'running' | 'completed' | 'rolled-back';
  /** How many steps of MIGRATION_STEPS completed (for the whole group). */
  readonly completedSteps: number;
  /** A step that was started but not recorded as completed (it may or may not have taken effect). */
  readonly startedStep?: MigrationStepKind | undefined;
  /** After completion: the site that writes the group now, and the one that receives it. */
  readonly primarySiteId?: string;
  readonly replicaSiteId?: string;
  /** The failure that stopped the last run, if any. */
  readonly lastError?: { readonly code: string; readonly message: string } | undefined;
}

/**
 * The group migration record of `groupId` in `meta`, if any.
 * @throws CORRUPTION (not JSON), FORMAT_VERSION (a newer format)
 */
export async function readGroupMigrationRecord(meta: MetaStore, groupId: string): Promise<GroupMigrationRecord | undefined> {
  const bytes = await meta.get(utf8(GROUP_MIGRATION_RECORD_PREFIX + groupId));
  if (bytes === undefined) return undefined;
  let record: GroupMigrationRecord;
  try {
    record = JSON.parse(new TextDecoder().decode(bytes)) as GroupMigrationRecord;
  } catch (err) {
    throw new DrkitError('CORRUPTION', `group migration record of ${groupId} is not JSON`, { cause: err, data: { groupId } });
  }
  if (record.formatVersion !== 1) throw new DrkitError('FORMAT_VERSION', `unknown group migration record version ${String(record.formatVersion)}`, { data: { groupId } });
  return record;
}

/** Writes `record` durably (synced batch): a step counts as completed once this resolves. */
export async function writeGroupMigrationRecord(meta: MetaStore, record: GroupMigrationRecord): Promise<void> {
  await meta.batch([{ kind: 'put', key: utf8(GROUP_MIGRATION_RECORD_PREFIX + record.groupId), value: utf8(JSON.stringify(record)) }], { sync: true });
}
