/**
 * Durable state of one migration (see ../migrate.ts): which step completed, and what each
 * step produced, in the source site's MetaStore under `mg/`, one key per lineage. Written
 * with a synced batch after every step, so a crash of either side leaves a record from
 * which the operation resumes or rolls back.
 */
import { DrkitError } from '../../core/errors.js';
import { utf8 } from '../../core/bytes.js';
import type { MetaStore } from '../../adapters/meta-store.js';
import type { LineageRecord } from '../lineage-record.js';

/** MetaStore key prefix of migration records (beside `st/`, `rp/s/` and `fo/l/`). */
export const MIGRATION_RECORD_PREFIX = 'mg/';

/** The steps of a migration, in execution order. */
export const MIGRATION_STEPS = ['stop-writes', 'final-snapshot', 'replicate', 'demote-source', 'promote-target', 'reverse-direction'] as const;

/** One step of a migration. */
export type MigrationStepKind = (typeof MIGRATION_STEPS)[number];

/** Each step's position in {@link MIGRATION_STEPS}. */
export const MIGRATION_STEP_INDEX = Object.freeze(Object.fromEntries(MIGRATION_STEPS.map((s, i) => [s, i])) as Record<MigrationStepKind, number>);

/** The persisted state of a migration. */
export interface MigrationRecord {
  readonly formatVersion: 1;
  readonly lineage: string;
  readonly sourceSiteId: string;
  readonly targetSiteId: string;
  /** The volume through which the source wrote the lineage. */
  readonly sourceVolumeId: string;
  /** The lineage generation the source wrote at. */
  readonly sourceGeneration: number;
  /** How the target's writable volume is made: a new clone (`name`) or a volume reverted in place (`volumeId`). */
  readonly targetVolume: { readonly name?: string; readonly volumeId?: string };
  /** `running` until the last step completed or the migration was rolled back. */
  readonly status: 'running' | 'completed' | 'rolled-back';
  /** How many steps of {@link MIGRATION_STEPS} completed. */
  readonly completedSteps: number;
  /** A step that was started but not recorded as completed (it may or may not have taken effect). */
  readonly startedStep: MigrationStepKind | undefined;
  readonly finalSnapshotId: string | undefined;
  /** The final snapshot's id at the target. */
  readonly remoteSnapshotId: string | undefined;
  /** The source's lineage record before the demotion (`null`: it had none); what a rollback puts back. */
  readonly previousLineageRecord: LineageRecord | null | undefined;
  readonly targetGeneration: number | undefined;
  readonly targetVolumeId: string | undefined;
  /** After completion: the site that writes the lineage now, and the one that receives it. */
  readonly primarySiteId: string | undefined;
  readonly replicaSiteId: string | undefined;
  /** The failure that stopped the last run, if any. */
  readonly lastError: { readonly code: string; readonly message: string } | undefined;
}

/**
 * The migration record of `lineage` in `meta`, if any.
 * @throws CORRUPTION (not JSON), FORMAT_VERSION (a newer format)
 */
export async function readMigrationRecord(meta: MetaStore, lineage: string): Promise<MigrationRecord | undefined> {
  const bytes = await meta.get(utf8(MIGRATION_RECORD_PREFIX + lineage));
  if (bytes === undefined) return undefined;
  let record: MigrationRecord;
  try {
    record = JSON.parse(new TextDecoder().decode(bytes)) as MigrationRecord;
  } catch (err) {
    throw new DrkitError('CORRUPTION', `migration record of ${lineage} is not JSON`, { cause: err, data: { lineage } });
  }
  if (record.formatVersion !== 1) throw new DrkitError('FORMAT_VERSION', `unknown migration record version ${String(record.formatVersion)}`, { data: { lineage } });
  // JSON drops undefined fields; read them back as undefined, not missing.
  return {
    ...record,
    startedStep: record.startedStep ?? undefined,
    finalSnapshotId: record.finalSnapshotId ?? undefined,
    remoteSnapshotId: record.remoteSnapshotId ?? undefined,
    targetGeneration: record.targetGeneration ?? undefined,
    targetVolumeId: record.targetVolumeId ?? undefined,
    primarySiteId: record.primarySiteId ?? undefined,
    replicaSiteId: record.replicaSiteId ?? undefined,
    lastError: record.lastError ?? undefined,
  };
}

/** Writes `record` durably (synced batch): a step counts as completed once this resolves. */
export async function writeMigrationRecord(meta: MetaStore, record: MigrationRecord): Promise<void> {
  await meta.batch([{ kind: 'put', key: utf8(MIGRATION_RECORD_PREFIX + record.lineage), value: utf8(JSON.stringify(record)) }], { sync: true });
}
