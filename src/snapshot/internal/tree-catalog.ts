/**
 * The catalog of a SnapshotTree: its volume and snapshot records, loaded at open, changed
 * in memory under the tree's mutex, and written back as MetaOps inside the tree's commit
 * batch (so a record and the block-map changes it refers to commit together).
 */
import { DrkitError } from '../../core/errors.js';
import type { MetaOp, MetaStore } from '../../adapters/meta-store.js';
import type { SnapshotRecord, VolumeRecord } from '../records.js';
import { TAG, type TreeKeys } from './keys.js';
import { decodeJson, encodeJson } from './record-codec.js';

/** Volume and snapshot records with change tracking. */
export class TreeCatalog {
  readonly #volumes = new Map<string, VolumeRecord>();
  readonly #snapshots = new Map<string, SnapshotRecord>();
  readonly #dirtyVolumes = new Set<string>();
  readonly #deletedVolumes = new Set<string>();
  readonly #newSnapshots = new Set<string>();
  readonly #deletedSnapshots = new Set<string>();

  /** Loads every record under the tree's keys. */
  async load(meta: MetaStore, keys: TreeKeys): Promise<void> {
    for await (const [, value] of meta.iterate({ prefix: keys.tagPrefix(TAG.volume) })) {
      const v = decodeJson<VolumeRecord>(value, 'volume record');
      this.#volumes.set(v.id, v);
    }
    for await (const [, value] of meta.iterate({ prefix: keys.tagPrefix(TAG.snapshot) })) {
      const s = decodeJson<SnapshotRecord>(value, 'snapshot record');
      this.#snapshots.set(s.id, s);
    }
  }

  /** The volume record. @throws NOT_FOUND */
  volume(volumeId: string): VolumeRecord {
    const v = this.#volumes.get(volumeId);
    if (v === undefined) throw new DrkitError('NOT_FOUND', `no volume ${volumeId}`, { data: { volumeId } });
    return v;
  }

  /** The snapshot record. @throws NOT_FOUND */
  snapshot(snapshotId: string): SnapshotRecord {
    const s = this.#snapshots.get(snapshotId);
    if (s === undefined) throw new DrkitError('NOT_FOUND', `no snapshot ${snapshotId}`, { data: { snapshotId } });
    return s;
  }

  /** The volume record, or undefined. */
  findVolume(volumeId: string): VolumeRecord | undefined {
    return this.#volumes.get(volumeId);
  }

  /** The snapshot record, or undefined. */
  findSnapshot(snapshotId: string): SnapshotRecord | undefined {
    return this.#snapshots.get(snapshotId);
  }

  volumes(): IterableIterator<VolumeRecord> {
    return this.#volumes.values();
  }

  snapshots(): IterableIterator<SnapshotRecord> {
    return this.#snapshots.values();
  }

  /** Adds or replaces a volume record (committed with the next commit). */
  putVolume(record: VolumeRecord): void {
    this.#volumes.set(record.id, record);
    this.#dirtyVolumes.add(record.id);
  }

  /** Marks a volume record changed in place (its root moved). */
  touchVolume(volumeId: string): void {
    this.#dirtyVolumes.add(volumeId);
  }

  removeVolume(volumeId: string): void {
    this.#volumes.delete(volumeId);
    this.#dirtyVolumes.delete(volumeId);
    this.#deletedVolumes.add(volumeId);
  }

  addSnapshot(record: SnapshotRecord): void {
    this.#snapshots.set(record.id, record);
    this.#newSnapshots.add(record.id);
  }

  removeSnapshot(snapshotId: string): void {
    this.#snapshots.delete(snapshotId);
    this.#newSnapshots.delete(snapshotId);
    this.#deletedSnapshots.add(snapshotId);
  }

  /** True when records changed since the last {@link takeOps}. */
  get dirty(): boolean {
    return this.#dirtyVolumes.size + this.#deletedVolumes.size + this.#newSnapshots.size + this.#deletedSnapshots.size > 0;
  }

  /** The ops that persist the changes; call {@link clearChanges} once they are committed. */
  changeOps(keys: TreeKeys): MetaOp[] {
    const ops: MetaOp[] = [];
    for (const id of this.#dirtyVolumes) {
      const v = this.#volumes.get(id);
      if (v !== undefined) ops.push({ kind: 'put', key: keys.named(TAG.volume, id), value: encodeJson(v) });
    }
    for (const id of this.#deletedVolumes) ops.push({ kind: 'del', key: keys.named(TAG.volume, id) });
    for (const id of this.#newSnapshots) ops.push({ kind: 'put', key: keys.named(TAG.snapshot, id), value: encodeJson(this.#snapshots.get(id)!) });
    for (const id of this.#deletedSnapshots) ops.push({ kind: 'del', key: keys.named(TAG.snapshot, id) });
    return ops;
  }

  /** Forgets the change tracking after a successful commit. */
  clearChanges(): void {
    this.#dirtyVolumes.clear();
    this.#deletedVolumes.clear();
    this.#newSnapshots.clear();
    this.#deletedSnapshots.clear();
  }
}
