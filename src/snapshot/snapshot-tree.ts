/**
 * SnapshotTree: redirect-on-write volumes with O(1) snapshots and clones.
 *
 * One tree owns one ExtentStore and a key prefix in one MetaStore, and holds any number
 * of volumes (a site's volume pool): all of them share content-addressed extents (local
 * dedup) and every snapshot, clone and consistency group lives here.
 *
 * Durability and fault model:
 * - Writes change the in-memory block map; `flush()` (on the tree or any volume of it)
 *   first flushes the ExtentStore and then commits every metadata change as ONE atomic
 *   MetaStore batch. A crash rolls every volume back to its last commit; a committed
 *   snapshot is never touched by a crash because snapshot creation is itself a durable
 *   commit and snapshot nodes are never changed in place.
 * - The metadata that references an extent is committed only after the extent is
 *   durable, so no crash leaves a dangling fingerprint. A crash can leave leaked
 *   extents (stored, never committed); {@link SnapshotTree.verify} reports them and
 *   {@link SnapshotTree.collectGarbage} removes them.
 * - An extent is deleted from the ExtentStore only after the metadata saying nothing
 *   references it is durable.
 * - If a commit fails, the tree refuses further work (code of the failure); reopen it.
 *
 * Every mutation is serialised by one mutex; reads run concurrently with writes and see
 * the block map as of the moment the read looked it up.
 */
import { equalBytes, toHex, utf8 } from '../core/bytes.js';
import { DrkitError, throwIfAborted } from '../core/errors.js';
import { assertPositiveInteger } from '../core/validate.js';
import type { Clock } from '../adapters/clock.js';
import type { ExtentPut, ExtentStore, PreparedExtentCommit } from '../adapters/extent-store.js';
import type { MetaStore } from '../adapters/meta-store.js';
import { SystemClock } from '../adapters/system-clock.js';
import { sha256Fingerprinter, type Fingerprinter } from '../dedup/fingerprint.js';
import { heightFor } from './internal/block-map.js';
import { changedRanges } from './internal/changed-ranges.js';
import { TreeKeys } from './internal/keys.js';
import { MapStore } from './internal/map-store.js';
import { TreeCatalog } from './internal/tree-catalog.js';
import { SpaceReclaimer } from './internal/space-reclaimer.js';
import { Mutex } from './internal/mutex.js';
import { runPostThaw, runPreFreeze, type QuiesceHooks } from './quiesce.js';
import { RECORD_FORMAT_VERSION, type ConsistencyLevel, type SnapshotInfo, type SnapshotRecord, type TreeRecord, type VolumeInfo, type VolumeRecord } from './records.js';
import { SnapshotReader } from './snapshot-reader.js';
import type { CreateVolumeOptions, DiffRange, LogPosition, ReclaimResult, SnapshotOptions, SnapshotTreeOptions, WriteLogEntry } from './tree-options.js';
import { Volume } from './volume.js';
import { decodeJson, encodeJson, seqOf, snapshotInfo, validateName, validateUserMetadata, volumeInfo } from './internal/record-codec.js';
import { verifyTree, type VerifyOptions, type VerifyReport } from './verifier.js';
import type { TreeCore } from './internal/tree-core.js';
import { writeRange, type RowGeometry } from './internal/redirect-on-write.js';
import { WriteLog } from './internal/write-log.js';
import { LOG_KIND } from './internal/log-record.js';
import { drainWrites, type DrainContext } from './internal/log-drain.js';
import { loadXxh64 } from '../core/checksum.js';

/** Default block size: 16 KiB (see docs/architecture.md, "Choosing the block size"). */
export const DEFAULT_BLOCK_BYTES = 16384;
/** Smallest and largest block sizes accepted. */
export const MIN_BLOCK_BYTES = 512;
export const MAX_BLOCK_BYTES = 1 << 20;
/**
 * Estimated heap bytes of uncommitted metadata (dirty nodes and counts, prefetched
 * counts) after which a write commits (without fsync), so memory stays bounded: 2 MiB is
 * about 128 MiB of sequentially written 16 KiB blocks between commits. It also bounds the
 * MetaStore transaction a commit makes (LMDB holds its dirty pages in memory until the
 * commit: ~8k scattered reference-count updates touch up to ~8k pages, ~32 MiB). Measured:
 * 4 MiB let writing 8 GiB peak at 306 MiB RssAnon, 2 MiB at 222 MiB.
 */
const AUTO_COMMIT_PINNED_BYTES = 2 * 1024 * 1024;
/**
 * Default byte budget of the block-map caches (decoded nodes, node and extent reference
 * counts): 24 MiB, e.g. ~550 full leaves (~140 K blocks, 2.2 GiB of 16 KiB blocks) hot.
 */
export const DEFAULT_TREE_CACHE_BYTES = 24 * 1024 * 1024;
/**
 * Writes at least this long and block-aligned skip the write log (when no logged write
 * overlaps them): they are whole blocks already, so logging them would only write them twice.
 */
const LOG_BYPASS_BYTES = 256 * 1024;
/**
 * A background drain starts when writes pause for {@link LOG_IDLE_DRAIN_MS} with more than
 * an eighth of the ring in use, or at once past half of it, and stops at an eighth: the log
 * absorbs a burst at append speed (a drain competes with writers for the one JS thread),
 * keeps recent writes to coalesce (a block rewritten before its drain costs one extent),
 * and catches up when the writer pauses.
 */
const LOG_BACKGROUND_START_FRACTION = 1 / 2;
const LOG_BACKGROUND_STOP_FRACTION = 1 / 8;
/** Pause in appends after which the background drain starts (50 ms: longer than any gap inside a burst, short for a human). */
const LOG_IDLE_DRAIN_MS = 50;
/** Past three quarters of the ring a writer drains a step itself before appending (backpressure). */
const LOG_HARD_FRACTION = 3 / 4;
/** Drained records kept for holds may use half the ring; past that the oldest hold is dropped. */
const LOG_HOLD_FRACTION = 1 / 2;
/**
 * One drain step applies at most this many writes, and at most {@link LOG_STEP_DATA_BYTES}
 * or a sixteenth of the ring of their data, then commits: it holds the tree's lock for
 * ~0.1-0.2 s at most, so writers interleave, and frees a fraction of the ring, not all of it.
 */
const LOG_STEP_WRITES = 1024;
const LOG_STEP_DATA_BYTES = 8 * 1024 * 1024;
const LOG_STEP_RING_FRACTION = 1 / 16;

/** Redirect-on-write volumes, snapshots and clones over an ExtentStore and a MetaStore. */
export class SnapshotTree {
  readonly #meta: MetaStore;
  readonly #extents: ExtentStore;
  readonly #keys: TreeKeys;
  readonly #fingerprinter: Fingerprinter;
  readonly #clock: Clock;
  readonly #mutex = new Mutex();
  readonly #record: TreeRecord;
  readonly #map: MapStore;
  readonly #catalog = new TreeCatalog();
  readonly #reclaimer: SpaceReclaimer;
  readonly #pins = new Map<string, number>();
  readonly #openHandles = new Map<string, number>();
  #activeReads = 0;
  #log: WriteLog | undefined;
  /** The tree record changed outside the map and catalog (the write log's state). */
  #recordDirty = false;
  #failure: DrkitError | undefined;
  readonly #onHoldDropped: SnapshotTreeOptions['onWriteLogHoldDropped'];
  /** The background drain in progress, if any. */
  #backgroundDrain: Promise<void> | undefined;
  /** Starts the background drain once appends pause. */
  #idleDrainTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #core: TreeCore;

  private constructor(options: SnapshotTreeOptions, keys: TreeKeys, record: TreeRecord, fingerprinter: Fingerprinter, clock: Clock) {
    this.#meta = options.meta;
    this.#extents = options.extents;
    this.#onHoldDropped = options.onWriteLogHoldDropped;
    this.#keys = keys;
    this.#fingerprinter = fingerprinter;
    this.#clock = clock;
    this.#record = record;
    this.#map = new MapStore(options.meta, keys, record.digestBytes, record.nextNodeId, options.cacheBytes ?? DEFAULT_TREE_CACHE_BYTES);
    this.#reclaimer = new SpaceReclaimer(options.meta, options.extents, keys, this.#map);
    const tree = this;
    this.#core = {
      map: this.#map,
      extents: this.#extents,
      fingerprinter,
      run: (fn) => tree.#mutate(fn),
      volume: (id) => tree.#volumeRecord(id),
      markVolumeDirty: (id) => {
        tree.#catalog.touchVolume(id);
      },
      write: (id, geometry, byteOffset, byteLength, data) => tree.#write(id, geometry, byteOffset, byteLength, data),
      overlayPending: (id) => tree.#log?.overlayOf(id) ?? (() => undefined),
      drainLog: () => tree.#drainLog(),
      afterWrite: async () => {
        if (tree.#map.pinnedBytes >= AUTO_COMMIT_PINNED_BYTES) await tree.#commit(false);
      },
      flush: (signal) => tree.flush({ signal }),
      beginRead: () => {
        tree.#ensureUsable();
        tree.#activeReads++;
      },
      endRead: () => {
        tree.#activeReads--;
      },
      releaseHandle: (volumeId) => tree.#release(tree.#openHandles, volumeId),
      releasePin: (snapshotId) => tree.#release(tree.#pins, snapshotId),
    };
  }

  /**
   * Opens the tree stored under `keyPrefix` in `meta`, creating it when absent.
   * @throws FORMAT_VERSION for an unknown record version, INVALID_ARGUMENT when the
   *   fingerprinter differs from the tree's or when a tree that has a write log is opened
   *   without its device, CORRUPTION for malformed records
   */
  static async open(options: SnapshotTreeOptions): Promise<SnapshotTree> {
    const keys = new TreeKeys(utf8(options.keyPrefix ?? 'st/'));
    const fingerprinter = options.fingerprinter ?? sha256Fingerprinter;
    const clock = options.clock ?? new SystemClock();
    const stored = await options.meta.get(keys.tree());
    let record: TreeRecord;
    if (stored === undefined) {
      record = {
        formatVersion: RECORD_FORMAT_VERSION,
        fingerprintAlgorithm: fingerprinter.algorithm,
        digestBytes: fingerprinter.digestBytes,
        nextNodeId: 1,
        nextVolumeSeq: 1,
        nextSnapshotSeq: 1,
        nextGroupSeq: 1,
      };
      await options.meta.batch([{ kind: 'put', key: keys.tree(), value: encodeJson(record) }], { sync: true });
    } else {
      record = decodeJson<TreeRecord>(stored, 'tree record');
      if (record.fingerprintAlgorithm !== fingerprinter.algorithm || record.digestBytes !== fingerprinter.digestBytes) {
        throw new DrkitError('INVALID_ARGUMENT', `tree uses ${record.fingerprintAlgorithm} fingerprints, not ${fingerprinter.algorithm}`, {
          data: { stored: record.fingerprintAlgorithm, given: fingerprinter.algorithm },
        });
      }
    }
    const tree = new SnapshotTree(options, keys, record, fingerprinter, clock);
    await tree.#load();
    if (options.writeLog !== undefined) await tree.#openLog(options.writeLog);
    else if (record.writeLog !== undefined) {
      // Its log may hold flushed writes not yet drained: opening without it would lose them.
      throw new DrkitError('INVALID_ARGUMENT', 'this tree has a write log: open it with its writeLog device so acknowledged writes are replayed', {
        data: { writeLogId: record.writeLog.id },
      });
    }
    return tree;
  }

  async #load(): Promise<void> {
    await this.#catalog.load(this.#meta, this.#keys);
  }

  /** The fingerprint function of this tree. */
  get fingerprinter(): Fingerprinter {
    return this.#fingerprinter;
  }

  /** The clock snapshots are timed with. */
  get clock(): Clock {
    return this.#clock;
  }

  // ---------------------------------------------------------------- volumes

  /**
   * Creates an empty (all-zero) volume and returns a writable handle to it.
   * @throws INVALID_ARGUMENT for a bad name, length or block size
   */
  async createVolume(options: CreateVolumeOptions): Promise<Volume> {
    const blockBytes = options.blockBytes ?? DEFAULT_BLOCK_BYTES;
    validateName(options.name);
    assertPositiveInteger(options.byteLength, 'byteLength');
    assertPositiveInteger(blockBytes, 'blockBytes');
    if (blockBytes < MIN_BLOCK_BYTES || blockBytes > MAX_BLOCK_BYTES || (blockBytes & (blockBytes - 1)) !== 0) {
      throw new DrkitError('INVALID_ARGUMENT', `blockBytes must be a power of two in [${MIN_BLOCK_BYTES}, ${MAX_BLOCK_BYTES}]`, { data: { blockBytes } });
    }
    if (options.byteLength % blockBytes !== 0) {
      throw new DrkitError('INVALID_ARGUMENT', 'byteLength must be a multiple of blockBytes', { data: { byteLength: options.byteLength, blockBytes } });
    }
    const id = await this.#mutate(async () => {
      const volume: VolumeRecord = {
        formatVersion: RECORD_FORMAT_VERSION,
        id: `vol-${this.#record.nextVolumeSeq++}`,
        name: options.name,
        byteLength: options.byteLength,
        blockBytes,
        parentSnapshotId: undefined,
        createdMs: this.#clock.now(),
        root: 0,
      };
      this.#catalog.putVolume(volume);
      await this.#commit(true);
      return volume.id;
    });
    return this.openVolume(id);
  }

  /**
   * A writable handle to a volume. Handles share state; close each one you open.
   * @throws NOT_FOUND
   */
  async openVolume(volumeId: string): Promise<Volume> {
    this.#ensureUsable();
    const record = this.#volumeRecord(volumeId);
    this.#openHandles.set(volumeId, (this.#openHandles.get(volumeId) ?? 0) + 1);
    return new Volume(this.#core, record.id, record.byteLength, record.blockBytes, heightFor(record.byteLength / record.blockBytes));
  }

  /** Every volume, in id order of creation. */
  listVolumes(): VolumeInfo[] {
    return [...this.#catalog.volumes()].map(volumeInfo);
  }

  /** One volume. @throws NOT_FOUND */
  getVolume(volumeId: string): VolumeInfo {
    return volumeInfo(this.#volumeRecord(volumeId));
  }

  /**
   * Deletes a volume (its snapshots stay). Space is reclaimed once nothing references it.
   * @throws NOT_FOUND, BUSY while a handle to it is open
   */
  async deleteVolume(volumeId: string, options: { reclaim?: boolean } = {}): Promise<void> {
    await this.#mutate(async () => {
      await this.#drainLog(); // no logged write of a deleted volume may be replayed
      const volume = this.#volumeRecord(volumeId);
      if ((this.#openHandles.get(volumeId) ?? 0) > 0) {
        throw new DrkitError('BUSY', `volume ${volumeId} has open handles`, { data: { volumeId } });
      }
      if (volume.root !== 0) await this.#map.decNode(volume.root);
      this.#catalog.removeVolume(volumeId);
      await this.#commit(true);
    });
    if (options.reclaim !== false) await this.reclaim();
  }

  // -------------------------------------------------------------- snapshots

  /**
   * Snapshots one volume: O(1) in its size. With `quiesce`, runs the hooks around the
   * commit; if they fail or time out, the snapshot is crash-consistent and says why.
   * @throws NOT_FOUND, INVALID_ARGUMENT
   */
  async snapshot(volumeId: string, options: SnapshotOptions): Promise<SnapshotInfo> {
    const [info] = await this.#snapshotVolumes([volumeId], options, false);
    return info!;
  }

  /**
   * Snapshots several volumes in one atomic metadata commit (a consistency group): a
   * crash leaves all of them or none.
   * @throws NOT_FOUND, INVALID_ARGUMENT (empty or repeated volumes)
   */
  async snapshotGroup(volumeIds: readonly string[], options: SnapshotOptions): Promise<SnapshotInfo[]> {
    if (volumeIds.length === 0 || new Set(volumeIds).size !== volumeIds.length) {
      throw new DrkitError('INVALID_ARGUMENT', 'a consistency group needs distinct volumes', { data: { volumeIds: [...volumeIds] } });
    }
    return this.#snapshotVolumes(volumeIds, options, true);
  }

  async #snapshotVolumes(volumeIds: readonly string[], options: SnapshotOptions, group: boolean): Promise<SnapshotInfo[]> {
    validateName(options.name);
    const userMetadata = validateUserMetadata(options.userMetadata);
    const perVolume = new Map(volumeIds.map((id) => [id, validateUserMetadata({ ...userMetadata, ...(options.userMetadataByVolume?.[id] ?? {}) })]));
    for (const id of volumeIds) this.#volumeRecord(id);
    if (options.imported !== undefined && options.quiesce !== undefined) {
      throw new DrkitError('INVALID_ARGUMENT', 'an imported snapshot cannot also be quiesced');
    }
    const timeoutMs = options.quiesceTimeoutMs ?? 30_000;
    assertPositiveInteger(timeoutMs, 'quiesceTimeoutMs');
    let fallbackReason: string | undefined;
    let frozen = false;
    if (options.quiesce !== undefined) {
      const outcome = await runPreFreeze(options.quiesce, timeoutMs, this.#clock);
      frozen = outcome.frozen;
      if (!outcome.frozen) fallbackReason = outcome.reason;
    }
    try {
      return await this.#mutate(async () => {
        await this.#drainLog(); // a snapshot holds every write acknowledged before it
        const groupId = group ? `cg-${this.#record.nextGroupSeq++}` : undefined;
        const createdMs = options.imported?.createdMs ?? this.#clock.now();
        const infos: SnapshotInfo[] = [];
        for (const volumeId of volumeIds) {
          const volume = this.#volumeRecord(volumeId);
          if (volume.root !== 0) await this.#map.incNode(volume.root);
          const record: SnapshotRecord = {
            formatVersion: RECORD_FORMAT_VERSION,
            id: `snap-${this.#record.nextSnapshotSeq++}`,
            name: options.name,
            volumeId,
            parentSnapshotId: volume.parentSnapshotId,
            createdMs,
            byteLength: volume.byteLength,
            blockBytes: volume.blockBytes,
            consistency: options.imported?.consistency ?? (frozen ? 'application' : 'crash'),
            groupId,
            fallbackReason: options.imported?.fallbackReason ?? fallbackReason,
            userMetadata: perVolume.get(volumeId)!,
            root: volume.root,
          };
          this.#catalog.addSnapshot(record);
          // The volume now descends from this snapshot (lineage).
          this.#catalog.putVolume({ ...volume, parentSnapshotId: record.id });
          infos.push(snapshotInfo(record));
        }
        await this.#commit(true);
        return infos;
      });
    } finally {
      if (options.quiesce !== undefined) await runPostThaw(options.quiesce);
    }
  }

  /** Every snapshot (optionally of one volume), oldest first. */
  listSnapshots(filter: { volumeId?: string; groupId?: string } = {}): SnapshotInfo[] {
    return [...this.#catalog.snapshots()]
      .filter((s) => (filter.volumeId === undefined || s.volumeId === filter.volumeId) && (filter.groupId === undefined || s.groupId === filter.groupId))
      .sort((a, b) => a.createdMs - b.createdMs || seqOf(a.id) - seqOf(b.id))
      .map(snapshotInfo);
  }

  /** One snapshot. @throws NOT_FOUND */
  getSnapshot(snapshotId: string): SnapshotInfo {
    return snapshotInfo(this.#snapshotRecord(snapshotId));
  }

  /** The chain of existing ancestors of a snapshot, nearest first (deleted ones are skipped over by their recorded parent). */
  lineage(snapshotId: string): SnapshotInfo[] {
    const out: SnapshotInfo[] = [];
    let next = this.#snapshotRecord(snapshotId).parentSnapshotId;
    const seen = new Set<string>();
    while (next !== undefined && !seen.has(next)) {
      seen.add(next);
      const s = this.#catalog.findSnapshot(next);
      if (s === undefined) break;
      out.push(snapshotInfo(s));
      next = s.parentSnapshotId;
    }
    return out;
  }

  /**
   * A read-only device over a snapshot. While it is open the snapshot cannot be deleted.
   * @throws NOT_FOUND
   */
  openSnapshot(snapshotId: string): SnapshotReader {
    this.#ensureUsable();
    const s = this.#snapshotRecord(snapshotId);
    this.#pins.set(snapshotId, (this.#pins.get(snapshotId) ?? 0) + 1);
    return new SnapshotReader(this.#core, s.id, s.root, s.byteLength, s.blockBytes, heightFor(s.byteLength / s.blockBytes));
  }

  /**
   * Creates a new writable volume whose contents are the snapshot's: O(1).
   * @throws NOT_FOUND, INVALID_ARGUMENT
   */
  async clone(snapshotId: string, options: { name: string }): Promise<Volume> {
    validateName(options.name);
    const id = await this.#mutate(async () => {
      const s = this.#snapshotRecord(snapshotId);
      if (s.root !== 0) await this.#map.incNode(s.root);
      const volume: VolumeRecord = {
        formatVersion: RECORD_FORMAT_VERSION,
        id: `vol-${this.#record.nextVolumeSeq++}`,
        name: options.name,
        byteLength: s.byteLength,
        blockBytes: s.blockBytes,
        parentSnapshotId: s.id,
        createdMs: this.#clock.now(),
        root: s.root,
      };
      this.#catalog.putVolume(volume);
      await this.#commit(true);
      return volume.id;
    });
    return this.openVolume(id);
  }

  /**
   * Reverts a volume in place to a snapshot (of it or of any volume of the same
   * geometry). Unflushed and later writes of the volume are discarded.
   * @throws NOT_FOUND, INVALID_ARGUMENT for a geometry mismatch
   */
  async restore(volumeId: string, snapshotId: string, options: { reclaim?: boolean } = {}): Promise<void> {
    await this.#mutate(async () => {
      await this.#drainLog(); // the volume's logged writes precede the restore that replaces them
      const volume = this.#volumeRecord(volumeId);
      const s = this.#snapshotRecord(snapshotId);
      if (s.byteLength !== volume.byteLength || s.blockBytes !== volume.blockBytes) {
        throw new DrkitError('INVALID_ARGUMENT', `snapshot ${snapshotId} does not match volume ${volumeId}'s geometry`, {
          data: { volumeId, snapshotId },
        });
      }
      if (s.root !== 0) await this.#map.incNode(s.root);
      if (volume.root !== 0) await this.#map.decNode(volume.root);
      this.#catalog.putVolume({ ...volume, root: s.root, parentSnapshotId: s.id });
      await this.#commit(true);
    });
    if (options.reclaim !== false) await this.reclaim();
  }

  /**
   * Deletes a snapshot. Its blocks are reclaimed once no other root references them
   * (by default right away; pass `reclaim: false` and call {@link reclaim} to pace it).
   * @throws NOT_FOUND, BUSY while a reader or a diff holds it
   */
  async deleteSnapshot(snapshotId: string, options: { reclaim?: boolean } = {}): Promise<void> {
    await this.#mutate(async () => {
      const s = this.#snapshotRecord(snapshotId);
      if ((this.#pins.get(snapshotId) ?? 0) > 0) {
        throw new DrkitError('BUSY', `snapshot ${snapshotId} is in use`, { data: { snapshotId } });
      }
      if (s.root !== 0) await this.#map.decNode(s.root);
      this.#catalog.removeSnapshot(snapshotId);
      await this.#commit(true);
    });
    if (options.reclaim !== false) await this.reclaim();
  }

  /**
   * The blocks that differ between snapshot `fromId` (undefined = an all-zero volume)
   * and snapshot `toId`, as runs of consecutive blocks with their fingerprints in `toId`.
   * Cost is proportional to the changed blocks: shared subtrees are skipped unread.
   * Both snapshots are pinned while the iteration runs.
   * @throws NOT_FOUND, INVALID_ARGUMENT for snapshots of different geometry
   */
  async *diff(fromId: string | undefined, toId: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<DiffRange> {
    const to = this.#snapshotRecord(toId);
    const from = fromId === undefined ? undefined : this.#snapshotRecord(fromId);
    if (from !== undefined && (from.byteLength !== to.byteLength || from.blockBytes !== to.blockBytes)) {
      throw new DrkitError('INVALID_ARGUMENT', `snapshots ${fromId} and ${toId} differ in geometry`, { data: { fromId, toId } });
    }
    const pinned = [toId, ...(fromId === undefined ? [] : [fromId])];
    for (const id of pinned) this.#pins.set(id, (this.#pins.get(id) ?? 0) + 1);
    try {
      yield* changedRanges(this.#map, from?.root ?? 0, to.root, heightFor(to.byteLength / to.blockBytes), to.blockBytes, options.signal);
    } finally {
      for (const id of pinned) this.#release(this.#pins, id);
    }
  }

  // ------------------------------------------------------------ write log

  /**
   * Appends a marker naming this point of the write stream across `volumeIds` (a
   * light-weight snapshot: no block-map snapshot is taken); durable with the next flush.
   * Crash-consistent across the volumes: every write acknowledged before the call is
   * before the marker, every later one after it (while a hold exists every write is
   * logged; without one, large aligned writes go straight to extents and are not in the log).
   * @returns the marker's position in the log
   * @throws NOT_SUPPORTED without a write log, NOT_FOUND for an unknown volume
   */
  async markWriteLog(volumeIds: readonly string[]): Promise<LogPosition> {
    return this.#mutate(async () => {
      const log = this.#requireLog();
      for (const id of volumeIds) this.#volumeRecord(id);
      await this.#makeRoom('', 0);
      const seq = await log.appendMarker(volumeIds);
      return { seq, offset: log.lastRecordOffset };
    });
  }

  /**
   * Keeps the log's records from `at` (a marker's position, or an earlier hold's) from
   * being reused after they drain, until released: what a NearSync session ships from.
   * Durable when it resolves. While any hold exists every write goes through the log. A
   * hold whose records pass half of the ring is dropped (see
   * {@link SnapshotTreeOptions.onWriteLogHoldDropped}).
   * @throws NOT_SUPPORTED without a write log, NOT_FOUND for a position not kept (or no
   *   record starting there)
   */
  async holdWriteLog(holderId: string, at: LogPosition): Promise<void> {
    await this.#mutate(async () => {
      const log = this.#requireLog();
      log.hold(holderId, at);
      if (at.seq < log.tailPosition.seq) {
        // The position must name a record that reads back: a wrong offset would keep the wrong bytes.
        const first = await log.records(at, at.seq).next().catch(() => undefined);
        if (first === undefined || first.done === true || first.value.seq !== at.seq) {
          log.releaseHold(holderId);
          throw new DrkitError('NOT_FOUND', `no write log record ${at.seq} starts at offset ${at.offset}`, { data: { seq: at.seq, offset: at.offset } });
        }
      }
      await this.#persistLogState();
    });
  }

  /** Drops a hold (idempotent); durable when it resolves. @throws NOT_SUPPORTED without a write log */
  async releaseWriteLog(holderId: string): Promise<void> {
    await this.#mutate(async () => {
      const log = this.#requireLog();
      if (!log.holds.has(holderId)) return;
      log.releaseHold(holderId);
      await this.#persistLogState();
    });
  }

  /**
   * The write log's identity (16 hex digits, random when the log was created), or
   * undefined without a log: its sequence numbers are comparable only under the same id.
   */
  get writeLogId(): string | undefined {
    return this.#record.writeLog?.id;
  }

  /** Holders of the write log and the first record each keeps. */
  writeLogHolds(): ReadonlyMap<string, LogPosition> {
    return new Map(this.#log?.holds ?? []);
  }

  /**
   * The log's records from `from` (a kept position: hold it first, or drains may reuse the
   * space) up to and including sequence number `toSeq`: writes, markers and flush records.
   * @throws NOT_SUPPORTED without a write log, NOT_FOUND for records not kept, CORRUPTION
   */
  async *readWriteLog(from: LogPosition, toSeq: number): AsyncGenerator<WriteLogEntry> {
    const log = this.#requireLog();
    for await (const r of log.records(from, toSeq)) {
      if (r.kind === LOG_KIND.write) yield { kind: 'write', seq: r.seq, volumeId: r.volumeId, byteOffset: r.byteOffset, data: r.data };
      else if (r.kind === LOG_KIND.marker) yield { kind: 'marker', seq: r.seq, volumeIds: r.volumeId === '' ? [] : r.volumeId.split('\n') };
      else yield { kind: 'flush', seq: r.seq };
    }
  }

  #requireLog(): WriteLog {
    if (this.#log === undefined) throw new DrkitError('NOT_SUPPORTED', 'this tree has no write log');
    return this.#log;
  }

  /** Commits the log's current state (start and holds) durably. Under the mutex. */
  async #persistLogState(): Promise<void> {
    this.#record.writeLog = this.#log!.persistedState;
    this.#recordDirty = true;
    await this.#commit(true);
  }

  /** Bytes waiting in the write log and its bounds, or undefined without a log. */
  writeLogStats(): { pendingBytes: number; usedBytes: number; capacityBytes: number } | undefined {
    const log = this.#log;
    return log === undefined ? undefined : { pendingBytes: log.pendingBytes, usedBytes: log.usedBytes, capacityBytes: log.capacityBytes };
  }

  // ------------------------------------------------- extents (for replication)

  /**
   * Which fingerprints this tree can serve without receiving their data: stored in the
   * ExtentStore (global across every volume of the tree). The answer is advisory: an
   * extent nothing references may be reclaimed before it is mapped, in which case
   * `mapBlocks` fails with EXTENT_NOT_FOUND and the sender resends it.
   */
  async haveExtents(fingerprints: readonly Uint8Array[], options: { signal?: AbortSignal } = {}): Promise<boolean[]> {
    this.#ensureUsable();
    return this.#extents.has(fingerprints, options);
  }

  /**
   * Reads extents by fingerprint, verified by the store's checksum. Used by replication
   * senders; callers keep the snapshot that references them pinned (a diff does).
   * @throws EXTENT_NOT_FOUND, CORRUPTION
   */
  async readExtents(fingerprints: readonly Uint8Array[], options: { signal?: AbortSignal } = {}): Promise<Uint8Array[]> {
    this.#ensureUsable();
    this.#activeReads++;
    try {
      return await this.#extents.getMany(fingerprints, options);
    } finally {
      this.#activeReads--;
    }
  }

  /**
   * Reads extents in the form the ExtentStore keeps them (compressed at rest or not),
   * verified against the stored form's checksum and not decoded: what a replication
   * sender ships as is. Where the store has no `getStored`, the content (codec 0, and
   * `checksum` undefined: the caller hashes it if it needs one). `into`: space the store
   * may read the stored bytes into (see `StoredReadOptions`); the views returned stay
   * valid until the caller reuses it. `bulk`: each extent is read about once (a transfer),
   * so the store need not cache its lookups (see `StoredReadOptions.bulk`).
   * @throws EXTENT_NOT_FOUND, CORRUPTION
   */
  async readStoredExtents(fingerprints: readonly Uint8Array[], options: { signal?: AbortSignal; into?: Uint8Array; bulk?: boolean } = {}): Promise<{ codec: number; bytes: Uint8Array; rawLength: number; checksum?: bigint; incompressible?: boolean }[]> {
    this.#ensureUsable();
    this.#activeReads++;
    try {
      if (this.#extents.getStored !== undefined) return await this.#extents.getStored(fingerprints, options);
      return (await this.#extents.getMany(fingerprints, options)).map((bytes) => ({ codec: 0, bytes, rawLength: bytes.byteLength }));
    } finally {
      this.#activeReads--;
    }
  }

  /**
   * Stores extents received from elsewhere, after checking that each one's content has
   * its fingerprint (and its checksum, when given). They stay unreferenced until
   * `Volume.mapBlocks` points blocks at them; a crash before that leaves them for
   * `collectGarbage`.
   * @throws CORRUPTION when content and fingerprint or checksum disagree (nothing is stored)
   */
  async putExtents(extents: readonly ExtentPut[], options: { signal?: AbortSignal } = {}): Promise<void> {
    this.#ensureUsable();
    for (const e of extents) {
      if (!equalBytes(this.#fingerprinter.fingerprint(e.data), e.fingerprint)) {
        throw new DrkitError('CORRUPTION', 'extent content does not match its fingerprint', { data: { fingerprint: toHex(e.fingerprint) } });
      }
    }
    await this.#mutate(() => this.#extents.put(extents, options));
  }

  // ----------------------------------------------------- durability and space

  /**
   * Commits every change of every volume durably.
   * @throws the commit's failure (the tree then refuses further work)
   */
  async flush(options: { signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(options.signal);
    await this.#mutate(() => this.#commit(true));
  }

  /**
   * Reclaims space of deleted snapshots and volumes, at most `maxNodes` block-map nodes
   * per call (so it can run incrementally beside writes), deleting extents nothing
   * references any more.
   */
  async reclaim(options: { maxNodes?: number; signal?: AbortSignal } = {}): Promise<ReclaimResult> {
    const maxNodes = options.maxNodes ?? Number.POSITIVE_INFINITY;
    return this.#mutate(async () => {
      const r = await this.#reclaimer.step(maxNodes, options.signal, (sync) => this.#commit(sync), () => this.#activeReads);
      return { ...r, done: await this.#reclaimer.idle() };
    });
  }

  /**
   * Removes extents the ExtentStore holds but no block references (left by a crash
   * between an extent write and its commit). Scans the whole store: run it after
   * recovery, not on a hot path. Does nothing while reads are in flight.
   */
  async collectGarbage(): Promise<{ leakedExtentsDeleted: number }> {
    return this.#mutate(async () => {
      await this.#commit(true);
      if (this.#activeReads > 0) return { leakedExtentsDeleted: 0 };
      return { leakedExtentsDeleted: await this.#reclaimer.collectLeaked() };
    });
  }

  /** Checks reference counts, dangling and leaked nodes and extents, and (optionally) every extent's checksum and fingerprint. */
  async verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    return this.#mutate(async () => {
      await this.#commit(true);
      const queues = await this.#reclaimer.loadQueues();
      return verifyTree({
        meta: this.#meta,
        extents: this.#extents,
        keys: this.#keys,
        map: this.#map,
        fingerprinter: this.#fingerprinter,
        roots: [
          ...[...this.#catalog.volumes()].map((v) => ({ owner: v.id, root: v.root, blockCount: v.byteLength / v.blockBytes })),
          ...[...this.#catalog.snapshots()].map((s) => ({ owner: s.id, root: s.root, blockCount: s.byteLength / s.blockBytes })),
        ],
        freeNodes: queues.freeNodes,
        deadExtents: queues.deadExtents,
        options,
      });
    });
  }

  /**
   * Flushes every acknowledged write (as {@link flush}), then releases the tree; later
   * calls fail with NOT_OPEN. Idempotent. A tree whose commit already failed (the failure
   * was thrown then) is released without another attempt.
   * @throws the flush's failure (the tree is released anyway: reopen it to recover what was durable)
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        if (this.#failure === undefined) await this.flush();
      } finally {
        this.#closed = true;
        clearTimeout(this.#idleDrainTimer);
        await this.#backgroundDrain; // a step under way finishes (its commit is whole); no new one starts
      }
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---------------------------------------------------------------- internals

  #ensureUsable(): void {
    if (this.#closed) throw new DrkitError('NOT_OPEN', 'snapshot tree is closed');
    if (this.#failure !== undefined) throw this.#failure;
  }

  async #mutate<T>(fn: () => Promise<T>): Promise<T> {
    this.#ensureUsable();
    return this.#mutex.run(async () => {
      this.#ensureUsable();
      return fn();
    });
  }

  /** Writes every pending change as one atomic batch; extents are made durable first. */
  async #commit(sync: boolean): Promise<void> {
    // A durable commit makes every acknowledged write durable, the logged ones included.
    if (sync && this.#log !== undefined) await this.#guard(() => this.#log!.flush());
    if (!this.#map.dirty && !this.#catalog.dirty && !this.#recordDirty) {
      if (sync) await this.#meta.flush();
      return;
    }
    // A durable commit carries the ExtentStore's index changes in the same batch when the
    // store shares this MetaStore (one sync, not two); otherwise the store commits first.
    const prepared = sync && this.#extents.prepareCommit !== undefined ? await this.#guardPrepare() : undefined;
    try {
      if (prepared === undefined) await this.#extents.flush();
      await this.#map.settleExtentRcs();
      const { ops } = this.#map.takeCommitOps();
      this.#record.nextNodeId = this.#map.nextNodeId;
      ops.push({ kind: 'put', key: this.#keys.tree(), value: encodeJson(this.#record) });
      ops.push(...this.#catalog.changeOps(this.#keys));
      await this.#meta.batch(prepared === undefined ? ops : [...prepared.ops, ...ops], { sync });
      prepared?.committed();
      this.#catalog.clearChanges();
      this.#recordDirty = false;
    } catch (err) {
      prepared?.abandoned();
      this.#failure =
        err instanceof DrkitError && err.code !== 'INTERNAL'
          ? new DrkitError(err.code, `snapshot tree commit failed; reopen the tree: ${err.message}`, { cause: err, transient: false })
          : new DrkitError('IO_ERROR', 'snapshot tree commit failed; reopen the tree', { cause: err, transient: false });
      throw this.#failure;
    }
  }

  /** Opens and replays the write log, drains what it held, and persists the new epoch. */
  async #openLog(device: NonNullable<SnapshotTreeOptions['writeLog']>): Promise<void> {
    const state = this.#record.writeLog ?? WriteLog.freshState();
    const log = await WriteLog.open(device, await loadXxh64(), state);
    this.#log = log;
    // Holds whose kept records did not read back were dropped by the replay: tell their holders.
    for (const holder of Object.keys(state.holds ?? {})) if (!log.holds.has(holder)) this.#onHoldDropped?.(holder, 'unreadable');
    await this.#mutate(async () => {
      if (log.pending.length > 0) await this.#drainLog();
      // The new epoch is durable before the first append (see WriteLog).
      this.#record.writeLog = log.pending.length === 0 ? { ...log.drainedState } : log.persistedState;
      this.#recordDirty = true;
      await this.#commit(true);
    });
  }

  /** A volume's content changes: through the log when small, else redirect-on-write at once. Under the mutex. */
  async #write(volumeId: string, geometry: RowGeometry, byteOffset: number, byteLength: number, data: Uint8Array | undefined): Promise<void> {
    const log = this.#log;
    const aligned = byteOffset % geometry.blockBytes === 0 && byteLength % geometry.blockBytes === 0;
    const direct = log === undefined || (log.holds.size === 0 && data !== undefined && byteLength >= LOG_BYPASS_BYTES && aligned && !log.overlaps(volumeId, byteOffset, byteLength));
    if (direct) {
      await writeRange(this.#core, this.#volumeRecord(volumeId), geometry, byteOffset, byteLength, data);
      this.#catalog.touchVolume(volumeId);
      await this.#core.afterWrite();
      return;
    }
    // Discards go through the log as zeros, so they stay ordered with the writes around them.
    const bytes = data ?? new Uint8Array(byteLength);
    await this.#makeRoom(volumeId, bytes.byteLength);
    if (!log.fits(volumeId, bytes.byteLength)) {
      // Larger than the log can hold: apply it at once, after what the log held.
      await writeRange(this.#core, this.#volumeRecord(volumeId), geometry, byteOffset, byteLength, data);
      this.#catalog.touchVolume(volumeId);
      await this.#core.afterWrite();
      return;
    }
    await log.appendWrite(volumeId, byteOffset, bytes);
    this.#startBackgroundDrain();
  }

  /** Backpressure: drains oldest writes, a step at a time, until a record of `dataBytes` fits under the hard bound. Under the mutex. */
  async #makeRoom(volumeId: string, dataBytes: number): Promise<void> {
    const log = this.#log!;
    while (!log.fits(volumeId, dataBytes) || log.usedBytes > log.capacityBytes * LOG_HARD_FRACTION) {
      if (log.holds.size > 0 && (log.retainedBytes > log.capacityBytes * LOG_HOLD_FRACTION || log.pending.length === 0)) {
        await this.#dropOldestHold();
        continue;
      }
      if (log.pending.length === 0) {
        await this.#drainLog(); // only flush and marker records left: move the start past them
        return;
      }
      await this.#drainLogStep();
    }
  }

  /** A holder that fell too far behind loses its hold (it falls back and re-seeds). Under the mutex. */
  async #dropOldestHold(): Promise<void> {
    const log = this.#log!;
    let oldest: [string, LogPosition] | undefined;
    for (const entry of log.holds) if (oldest === undefined || entry[1].seq < oldest[1].seq) oldest = entry;
    log.releaseHold(oldest![0]);
    await this.#persistLogState();
    this.#onHoldDropped?.(oldest![0], 'bound');
  }

  /**
   * Starts draining in the background, a step per lock acquisition, past
   * {@link LOG_BACKGROUND_START_FRACTION} of the ring, or arms the idle timer that starts it
   * once appends pause. A failed step stops it: a failed commit has already made the tree
   * refuse work, and any other error (a damaged extent read) is met again by the next
   * foreground drain, which reports it.
   */
  #startBackgroundDrain(): void {
    const log = this.#log!;
    if (this.#backgroundDrain !== undefined || log.usedBytes <= log.capacityBytes * LOG_BACKGROUND_STOP_FRACTION) return;
    clearTimeout(this.#idleDrainTimer);
    if (log.usedBytes < log.capacityBytes * LOG_BACKGROUND_START_FRACTION) {
      this.#idleDrainTimer = setTimeout(() => this.#runBackgroundDrain(), LOG_IDLE_DRAIN_MS);
      this.#idleDrainTimer.unref?.();
      return;
    }
    this.#runBackgroundDrain();
  }

  #runBackgroundDrain(): void {
    const log = this.#log!;
    this.#idleDrainTimer = undefined;
    if (this.#backgroundDrain !== undefined) return;
    this.#backgroundDrain = (async () => {
      try {
        await new Promise<void>((resolve) => setImmediate(resolve));
        while (!this.#closed && this.#failure === undefined && log.pending.length > 0 && log.usedBytes > log.capacityBytes * LOG_BACKGROUND_STOP_FRACTION) {
          await this.#mutate(async () => {
            if (log.pending.length > 0) await this.#drainLogStep();
          });
        }
      } catch {
        // See above: nothing is lost, the writes stay in the log.
      } finally {
        this.#backgroundDrain = undefined;
      }
    })();
  }

  /**
   * Applies every write waiting in the log to the block map (coalesced into whole blocks)
   * and commits durably with the log's new start. Under the mutex.
   */
  async #drainLog(): Promise<void> {
    const log = this.#log;
    if (log === undefined || (log.pending.length === 0 && log.usedBytes === 0)) return;
    await drainWrites(log.pending, this.#drainContext());
    this.#record.writeLog = log.drainedState;
    this.#recordDirty = true;
    await this.#commit(true);
    log.drained(this.#record.writeLog);
  }

  /** Drains the oldest writes (one bounded step) and commits durably with the log's new start. Under the mutex. */
  async #drainLogStep(): Promise<void> {
    const log = this.#log!;
    const pending = log.pending;
    let count = 0;
    let dataBytes = 0;
    const maxDataBytes = Math.min(LOG_STEP_DATA_BYTES, log.capacityBytes * LOG_STEP_RING_FRACTION);
    while (count < pending.length && count < LOG_STEP_WRITES && dataBytes < maxDataBytes) dataBytes += pending[count++]!.data.byteLength;
    await drainWrites(pending.slice(0, count), this.#drainContext());
    this.#record.writeLog = log.prefixState(count);
    this.#recordDirty = true;
    await this.#commit(true);
    log.drainedPrefix(count, this.#record.writeLog);
  }

  #drainContext(): DrainContext {
    return {
      stores: this.#core,
      volume: (id) => this.#catalog.findVolume(id),
      markVolumeDirty: (id) => this.#catalog.touchVolume(id),
    };
  }

  /** The ExtentStore's prepared commit, or undefined (then it is flushed on its own). */
  async #guardPrepare(): Promise<PreparedExtentCommit | undefined> {
    try {
      return await this.#extents.prepareCommit!(this.#meta);
    } catch (err) {
      this.#failure = new DrkitError(err instanceof DrkitError && err.code !== 'INTERNAL' ? err.code : 'IO_ERROR', 'snapshot tree commit failed; reopen the tree', { cause: err, transient: false });
      throw this.#failure;
    }
  }

  /** Runs `fn`; a failure makes the tree refuse further work, as a failed commit does. */
  async #guard(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.#failure = new DrkitError(err instanceof DrkitError && err.code !== 'INTERNAL' ? err.code : 'IO_ERROR', 'write log flush failed; reopen the tree', { cause: err, transient: false });
      throw this.#failure;
    }
  }

  #release(counts: Map<string, number>, id: string): void {
    const n = (counts.get(id) ?? 0) - 1;
    if (n <= 0) counts.delete(id);
    else counts.set(id, n);
  }

  #volumeRecord(volumeId: string): VolumeRecord {
    return this.#catalog.volume(volumeId);
  }

  #snapshotRecord(snapshotId: string): SnapshotRecord {
    return this.#catalog.snapshot(snapshotId);
  }

  // ------------------------------------------------------- lookup by name

  /**
   * The volume named `name` (names are not unique: several volumes may share one).
   * @throws NOT_FOUND when none has it, INVALID_ARGUMENT when several do (`data.ids`: use an id)
   */
  findVolume(name: string): VolumeInfo {
    return onlyNamed(this.listVolumes(), name, 'volume');
  }

  /**
   * The snapshot named `name`, optionally among the snapshots of one volume.
   * @throws NOT_FOUND when none has it, INVALID_ARGUMENT when several do (`data.ids`: use an id or `volumeId`)
   */
  findSnapshot(name: string, filter: { volumeId?: string } = {}): SnapshotInfo {
    return onlyNamed(this.listSnapshots(filter), name, 'snapshot');
  }
}

/** The one item named `name`. @throws NOT_FOUND, INVALID_ARGUMENT (ambiguous) */
function onlyNamed<T extends { readonly id: string; readonly name: string }>(items: readonly T[], name: string, what: string): T {
  const named = items.filter((x) => x.name === name);
  if (named.length === 1) return named[0]!;
  if (named.length === 0) throw new DrkitError('NOT_FOUND', `no ${what} is named '${name}'`, { data: { name } });
  throw new DrkitError('INVALID_ARGUMENT', `${named.length} ${what}s are named '${name}': name one by id`, { data: { name, ids: named.map((x) => x.id) } });
}
