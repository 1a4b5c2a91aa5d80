/**
 * The durable per-site state of one volume lineage after a promotion: which generation
 * this site last took part in, and whether it holds the lineage writable (`primary`) or
 * only receives it (`replica`). Stored in the site's MetaStore, one key per lineage, so a
 * promotion is recorded before its first snapshot exists and survives a restart.
 *
 * A site with no record for a lineage is at generation 0; it holds the lineage writable
 * exactly when the lineage is its own (`${siteId}/${volumeId}`) and that volume exists.
 */
import { DrkitError } from '../core/errors.js';
import { utf8 } from '../core/bytes.js';
import type { MetaStore } from '../adapters/meta-store.js';
import type { SnapshotTree } from '../snapshot/index.js';
import { generationOf, originOf, volumeKeyOf } from './origin.js';

/** MetaStore key prefix of lineage records (beside the tree's `st/` and sessions' `rp/s/`). */
export const LINEAGE_RECORD_PREFIX = 'fo/l/';

/** A site's durable role in one lineage. */
export interface LineageRecord {
  readonly formatVersion: 1;
  readonly lineage: string;
  /** The newest generation this site took part in (promoted at, or demoted to receive). */
  readonly generation: number;
  /** `primary`: this site writes the lineage (through `volumeId`); `replica`: it only receives it. */
  readonly role: 'primary' | 'replica';
  /** The writable volume of a primary; the volume a replica last wrote, kept for promotion back. */
  readonly volumeId: string | undefined;
  /** The snapshot the last promotion started from. */
  readonly promotedFromSnapshotId: string | undefined;
}

/**
 * The lineage record of `lineage` in `meta`, if any.
 * @throws FORMAT_VERSION for a record this build cannot read, CORRUPTION for an unreadable one
 */
export async function readLineageRecord(meta: MetaStore, lineage: string): Promise<LineageRecord | undefined> {
  const bytes = await meta.get(utf8(LINEAGE_RECORD_PREFIX + lineage));
  if (bytes === undefined) return undefined;
  let record: LineageRecord;
  try {
    record = JSON.parse(new TextDecoder().decode(bytes)) as LineageRecord;
  } catch (err) {
    throw new DrkitError('CORRUPTION', `lineage record of ${lineage} is not JSON`, { cause: err, data: { lineage } });
  }
  if (record.formatVersion !== 1) throw new DrkitError('FORMAT_VERSION', `unknown lineage record version ${String(record.formatVersion)}`, { data: { lineage } });
  return { ...record, volumeId: record.volumeId ?? undefined, promotedFromSnapshotId: record.promotedFromSnapshotId ?? undefined };
}

/** Writes `record` durably (synced batch): a promotion exists once this resolves. */
export async function writeLineageRecord(meta: MetaStore, record: LineageRecord): Promise<void> {
  await writeLineageRecords(meta, [record]);
}

/** Writes several records in ONE synced batch: a consistency group's promotions exist all together or not at all. */
export async function writeLineageRecords(meta: MetaStore, records: readonly LineageRecord[]): Promise<void> {
  await meta.batch(records.map((record) => ({ kind: 'put' as const, key: utf8(LINEAGE_RECORD_PREFIX + record.lineage), value: utf8(JSON.stringify(record)) })), { sync: true });
}

/** Removes the record of `lineage` (the site falls back to the no-record rules). */
export async function deleteLineageRecord(meta: MetaStore, lineage: string): Promise<void> {
  await meta.batch([{ kind: 'del', key: utf8(LINEAGE_RECORD_PREFIX + lineage) }], { sync: true });
}

/** What a site knows of one lineage: the facts split-brain checks compare across sites. */
export interface LineageStatus {
  readonly siteId: string;
  readonly lineage: string;
  /** The highest generation recorded here or carried by a snapshot of the lineage held here. */
  readonly generation: number;
  /** The volume through which this site writes the lineage, if it holds it writable. */
  readonly writableVolumeId: string | undefined;
  /** Snapshots of the lineage held here, oldest first (by createdMs). */
  readonly snapshotIds: readonly string[];
}

/**
 * The status of `lineage` at a site, from its tree and its lineage record.
 * @throws FORMAT_VERSION, CORRUPTION (unreadable record), INVALID_ARGUMENT (a bad generation stamp)
 */
export async function readLineageStatus(parts: { tree: SnapshotTree; meta: MetaStore; siteId: string }, lineage: string): Promise<LineageStatus> {
  const record = await readLineageRecord(parts.meta, lineage);
  const snapshots = parts.tree
    .listSnapshots()
    .filter((s) => volumeKeyOf(originOf(s, parts.siteId)) === lineage)
    .sort((a, b) => a.createdMs - b.createdMs);
  let generation = record?.generation ?? 0;
  for (const s of snapshots) generation = Math.max(generation, generationOf(s));
  const volumeExists = (id: string | undefined) => id !== undefined && parts.tree.listVolumes().some((v) => v.id === id);
  let writableVolumeId: string | undefined;
  if (record !== undefined) {
    writableVolumeId = record.role === 'primary' && volumeExists(record.volumeId) ? record.volumeId : undefined;
  } else {
    const own = `${parts.siteId}/`;
    const volumeId = lineage.startsWith(own) ? lineage.slice(own.length) : undefined;
    writableVolumeId = volumeExists(volumeId) ? volumeId : undefined;
  }
  return { siteId: parts.siteId, lineage, generation, writableVolumeId, snapshotIds: snapshots.map((s) => s.id) };
}
