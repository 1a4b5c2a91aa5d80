/**
 * The exports an NBD server offers from a SnapshotTree, and their names.
 *
 * Naming scheme (stable, so a client's URI keeps working while the tree changes):
 * - a volume (clones are volumes) is exported read-write under its name;
 * - a snapshot is exported read-only as `VOLUME@SNAPSHOT`: the export name of the volume
 *   it was taken of (its id once that volume is deleted), `@`, the snapshot's name;
 * - when two entries would share a name, each falls back to ids (`vol-3`, `VOLUME@snap-7`),
 *   and ids are always accepted as aliases: `vol-3`, `snap-7`, `vol-3@snap-7`.
 *
 * The catalog is computed from the tree's in-memory catalog at every lookup (it grows
 * with the number of volumes and snapshots, not with stored data), so snapshots taken
 * while the server runs are exported at once.
 */
import type { SnapshotInfo, SnapshotTree, VolumeInfo } from '../snapshot/index.js';

/** What an export is backed by. */
export type NbdExportKind = 'volume' | 'snapshot';

/** One export of an NBD server. */
export interface NbdExport {
  /** The canonical export name (what NBD_OPT_LIST shows and NBD_INFO_NAME returns). */
  readonly name: string;
  readonly kind: NbdExportKind;
  /** Snapshots always; volumes when the server or catalog is read-only. */
  readonly readOnly: boolean;
  /** Export size: the volume's (or snapshotted volume's) byteLength. */
  readonly byteLength: number;
  /** The volume's block size: the preferred NBD block size. */
  readonly blockBytes: number;
  /** Human-readable line shown by `nbdinfo --list`. */
  readonly description: string;
  /** The volume, or the volume the snapshot was taken of. */
  readonly volumeId: string;
  /** The snapshot, for snapshot exports. */
  readonly snapshotId: string | undefined;
  /** Other names that select this export (ids). */
  readonly aliases: readonly string[];
}

/** Which exports to offer. */
export interface NbdCatalogOptions {
  /** Offers only the exports this returns true for. @defaultValue every volume and snapshot */
  exports?: (entry: NbdExport) => boolean;
  /** Exports volumes read-only too. @defaultValue false */
  readOnly?: boolean;
}

/** Every export the tree offers under `options`, volumes first (in creation order), then snapshots (oldest first). */
export function listNbdExports(tree: SnapshotTree, options: NbdCatalogOptions = {}): NbdExport[] {
  const volumes = tree.listVolumes();
  const snapshots = tree.listSnapshots();
  const volumeNames = assignNames(volumes.map((v) => [v.name, v.id]));
  const volumeNameById = new Map(volumes.map((v, i) => [v.id, volumeNames[i]!]));
  const snapshotNames = assignNames(
    snapshots.map((s) => {
      const volumePart = volumeNameById.get(s.volumeId) ?? s.volumeId;
      return [`${volumePart}@${s.name}`, `${volumePart}@${s.id}`, s.id];
    }),
    new Set(volumeNames),
  );
  const entries = [
    ...volumes.map((v, i) => volumeExport(v, volumeNames[i]!, options.readOnly === true)),
    ...snapshots.map((s, i) => snapshotExport(s, snapshotNames[i]!)),
  ];
  return options.exports === undefined ? entries : entries.filter((e) => options.exports!(e));
}

/** The export a client's name selects: a canonical name first, else an alias. */
export function findNbdExport(tree: SnapshotTree, name: string, options: NbdCatalogOptions = {}): NbdExport | undefined {
  const entries = listNbdExports(tree, options);
  return entries.find((e) => e.name === name) ?? entries.find((e) => e.aliases.includes(name));
}

/**
 * Gives each entry the first of its candidate names that no other entry wants first and
 * that is still free; ids (the last candidate) are unique among ids, so a name is found.
 */
function assignNames(candidates: readonly string[][], taken: Set<string> = new Set()): string[] {
  const firstChoices = new Map<string, number>();
  for (const c of candidates) firstChoices.set(c[0]!, (firstChoices.get(c[0]!) ?? 0) + 1);
  const used = new Set(taken);
  const out: string[] = [];
  for (const c of candidates) {
    const usable = c.filter((n) => !n.includes('\0'));
    const pick =
      usable.find((n, i) => (i > 0 || firstChoices.get(n) === 1) && !used.has(n)) ??
      // Only when user names equal other entries' ids: an id with the entry's position is unique.
      `${c[c.length - 1]!}~${out.length}`;
    used.add(pick);
    out.push(pick);
  }
  return out;
}

function volumeExport(v: VolumeInfo, name: string, readOnly: boolean): NbdExport {
  const lineage = v.parentSnapshotId === undefined ? '' : `, descends from ${v.parentSnapshotId}`;
  return Object.freeze({
    name,
    kind: 'volume',
    readOnly,
    byteLength: v.byteLength,
    blockBytes: v.blockBytes,
    description: `volume ${v.id} "${v.name}", ${formatBytes(v.byteLength)}, ${formatBytes(v.blockBytes)} blocks${lineage}, ${readOnly ? 'read-only' : 'read-write'}`,
    volumeId: v.id,
    snapshotId: undefined,
    aliases: Object.freeze([v.id]),
  });
}

function snapshotExport(s: SnapshotInfo, name: string): NbdExport {
  return Object.freeze({
    name,
    kind: 'snapshot',
    readOnly: true,
    byteLength: s.byteLength,
    blockBytes: s.blockBytes,
    description: `snapshot ${s.id} "${s.name}" of ${s.volumeId}, ${formatBytes(s.byteLength)}, taken ${new Date(s.createdMs).toISOString()}, ${s.consistency}-consistent, read-only`,
    volumeId: s.volumeId,
    snapshotId: s.id,
    aliases: Object.freeze([s.id, `${s.volumeId}@${s.id}`]),
  });
}

function formatBytes(byteLength: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = byteLength;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1 && value % 1024 === 0) {
    value /= 1024;
    unit++;
  }
  return `${value} ${units[unit]}`;
}
