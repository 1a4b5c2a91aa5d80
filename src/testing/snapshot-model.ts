/**
 * The trivially correct model of drkit's snapshot semantics: every volume and every
 * snapshot is a flat byte array. A snapshot is a copy taken at creation and never
 * changed again; a clone starts as a copy of a snapshot; restore copies a snapshot
 * back over a volume. Durability: every metadata operation (snapshot, clone, restore,
 * delete, flush, ...) commits every volume, so after a crash each volume reads as it
 * was at its last commit.
 *
 * Users drive it beside their own system (through `runSnapshotWorkload`) to check that
 * their code keeps drkit's semantics.
 */

/** One modelled volume. */
export interface ModelVolume {
  /** The system's id for it (filled by the runner). */
  id: string;
  bytes: Uint8Array;
  /** Content at the last commit: what a crash returns to. */
  durable: Uint8Array;
}

/** One modelled snapshot. */
export interface ModelSnapshot {
  id: string;
  volumeId: string;
  readonly bytes: Uint8Array;
}

/** Flat-array model of volumes and snapshots. */
export class SnapshotModel {
  readonly volumes: ModelVolume[] = [];
  readonly snapshots: ModelSnapshot[] = [];

  /** Adds an all-zero volume. */
  createVolume(id: string, byteLength: number): ModelVolume {
    const v = { id, bytes: new Uint8Array(byteLength), durable: new Uint8Array(byteLength) };
    this.volumes.push(v);
    this.commit();
    return v;
  }

  write(v: ModelVolume, byteOffset: number, data: Uint8Array): void {
    v.bytes.set(data, byteOffset);
  }

  discard(v: ModelVolume, byteOffset: number, byteLength: number): void {
    v.bytes.fill(0, byteOffset, byteOffset + byteLength);
  }

  /** Snapshots volumes together (one commit). */
  snapshot(vols: readonly ModelVolume[], ids: readonly string[]): ModelSnapshot[] {
    const out = vols.map((v, i) => ({ id: ids[i]!, volumeId: v.id, bytes: v.bytes.slice() }));
    this.snapshots.push(...out);
    this.commit();
    return out;
  }

  clone(s: ModelSnapshot, id: string): ModelVolume {
    const v = { id, bytes: s.bytes.slice(), durable: s.bytes.slice() };
    this.volumes.push(v);
    this.commit();
    return v;
  }

  restore(v: ModelVolume, s: ModelSnapshot): void {
    v.bytes = s.bytes.slice();
    this.commit();
  }

  deleteSnapshot(s: ModelSnapshot): void {
    this.snapshots.splice(this.snapshots.indexOf(s), 1);
    this.commit();
  }

  deleteVolume(v: ModelVolume): void {
    this.volumes.splice(this.volumes.indexOf(v), 1);
    this.commit();
  }

  /** Every volume's current content becomes durable. */
  commit(): void {
    for (const v of this.volumes) v.durable = v.bytes.slice();
  }

  /** A crash: every volume returns to its last commit. */
  crash(): void {
    for (const v of this.volumes) v.bytes = v.durable.slice();
  }

  /** Block indexes whose content differs between two byte arrays. */
  static changedBlocks(from: Uint8Array | undefined, to: Uint8Array, blockBytes: number): number[] {
    const out: number[] = [];
    for (let b = 0; b * blockBytes < to.length; b++) {
      const start = b * blockBytes;
      for (let i = start; i < start + blockBytes; i++) {
        if ((from?.[i] ?? 0) !== to[i]) {
          out.push(b);
          break;
        }
      }
    }
    return out;
  }
}
