/**
 * The write log (the seed's OpLog): a ring of checksummed records on a BlockDevice that
 * takes a tree's small writes as sequential appends; a drain later coalesces them into
 * whole blocks and applies them redirect-on-write (see the tree's `#drainLog`).
 *
 * Durability promise: a write appended to the log is durable once a later `flush()`
 * resolves: `flush()` appends a flush record and flushes the device, and recovery
 * replays records only up to the last intact flush record. After a crash at any point a
 * reopen therefore shows every write whose flush resolved and none that was not
 * flushed (records after the last flush record are ignored and overwritten), unless a
 * drain had already committed them into the block map. The log's start (the first
 * record not yet drained) is persisted in the tree's record, in the same commit as the
 * drained block-map changes, so a record is applied exactly once: before that commit it
 * is replayed, after it it is behind the start.
 *
 * Fault model: the device honours `flush()`; a crash may tear or drop unflushed writes
 * (each record carries an xxh64, the log id and its sequence number, so a torn, stale or
 * foreign record ends the replay). Damage to flushed records (bit rot) is not repaired
 * but detected when the damaged record's header still reads: a later record whose
 * `flushedSeq` covers it proves it was durable, and the open fails with `CORRUPTION`
 * instead of dropping the acknowledged writes after it.
 *
 * Memory: the data of records not yet drained is held in memory for reads, bounded by
 * the log's byte length (the caller drains before it fills), indexed by 64 KiB granule so
 * a read looks only at the writes that touch it. The same copies (and the marker and
 * flush records since the start, a few bytes each) serve {@link WriteLog.records} for
 * records not yet drained: NearSync ships them without reading the log device back.
 */
import type { BlockDevice } from '../../adapters/block-device.js';
import type { Xxh64 } from '../../core/checksum.js';
import { DrkitError } from '../../core/errors.js';
import { LOG_ALIGN_BYTES, LOG_HEADER_BYTES, LOG_KIND, encodeRecord, recordBytes, type LogRecord } from './log-record.js';
import { utf8 } from '../../core/bytes.js';
import { walkLog, type LogPosition, type LogRing, type WalkStop } from './log-walk.js';

export type { LogPosition } from './log-walk.js';

/** A record as {@link WriteLog.records} yields it: from the device, or from memory while not yet drained. */
export type LoggedRecord = Pick<LogRecord, 'kind' | 'seq' | 'volumeId' | 'byteOffset' | 'data'>;

const NO_DATA = new Uint8Array(0);

/** Where the log starts, persisted in the tree record (JSON). */
export interface WriteLogState {
  /** Random id of this tree's log, hex (16 digits). */
  readonly id: string;
  /** Byte offset of the first record not yet drained. */
  readonly startOffset: number;
  /** Sequence number of that record. */
  readonly startSeq: number;
  /** Epoch of the last open: an open writes with a larger one, persisted before its first append. */
  readonly epoch: number;
  /**
   * Holds on drained records (a NearSync session that has not shipped them yet), by
   * holder id: the first record each still needs. The ring is not reused past the oldest.
   */
  readonly holds?: Readonly<Record<string, LogPosition>>;
}

/** A write waiting in the log. */
export interface PendingWrite {
  readonly seq: number;
  readonly volumeId: string;
  readonly byteOffset: number;
  readonly data: Uint8Array;
  /** Byte offset in the ring just past this write's record: where the log starts once it is drained. */
  readonly endOffset: number;
}

/**
 * Granule of the index of pending writes: 64 KiB, so a read or an overlap check looks only
 * at the writes that touch the granules it spans, not at every pending write of the volume.
 */
const GRANULE_BYTES = 64 * 1024;

/** Pending writes of one volume: in order, and by the granules they touch. */
interface VolumePending {
  readonly list: PendingWrite[];
  readonly byGranule: Map<number, PendingWrite[]>;
}

/** The ring of records, the writes not yet drained, and recovery. Callers serialise calls. */
export class WriteLog {
  readonly #device: BlockDevice;
  readonly #xxh: Xxh64;
  readonly #logId: bigint;
  readonly #epoch: number;
  readonly #capacityBytes: number;
  #startOffset: number;
  #startSeq: number;
  #tail: number;
  #nextSeq: number;
  #pending: PendingWrite[] = [];
  /** Marker and flush records from the start on, in order: with {@link #pending}, every record not yet drained. */
  #marks: LoggedRecord[] = [];
  readonly #byVolume = new Map<string, VolumePending>();
  #pendingBytes = 0;
  /** Records appended since the last flush record. */
  #unflushed = 0;
  /** Holds on records (see {@link WriteLogState.holds}). */
  readonly #holds = new Map<string, LogPosition>();
  /** Sequence number of the last flush record whose device flush completed (format 2's `flushedSeq`). */
  #flushedSeq = 0;
  /** Where the last appended record starts, and its encoded bytes. */
  #lastRecordOffset = 0;
  #lastRecord: Uint8Array | undefined;

  private constructor(device: BlockDevice, xxh: Xxh64, state: WriteLogState) {
    this.#device = device;
    this.#xxh = xxh;
    this.#logId = BigInt(`0x${state.id}`);
    this.#epoch = state.epoch + 1;
    this.#capacityBytes = Math.floor(device.byteLength / LOG_ALIGN_BYTES) * LOG_ALIGN_BYTES;
    this.#startOffset = state.startOffset;
    this.#startSeq = state.startSeq;
    this.#tail = state.startOffset;
    this.#nextSeq = state.startSeq;
    for (const [holder, at] of Object.entries(state.holds ?? {})) this.#holds.set(holder, at);
  }

  /** A fresh log state (a new random id, starting at byte 0). */
  static freshState(): WriteLogState {
    const id = [...globalThis.crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, '0')).join('');
    return { id, startOffset: 0, startSeq: 1, epoch: 0 };
  }

  /**
   * Opens the log at `state` and replays it: every write up to the last intact flush
   * record becomes pending again. The caller persists {@link drainedState}'s epoch (the
   * new one) durably before the first append.
   * @throws INVALID_ARGUMENT for a device too small or misaligned for a log
   */
  static async open(device: BlockDevice, xxh: Xxh64, state: WriteLogState): Promise<WriteLog> {
    if (device.byteLength < 64 * LOG_ALIGN_BYTES || LOG_ALIGN_BYTES % device.capabilities.alignmentBytes !== 0) {
      throw new DrkitError('INVALID_ARGUMENT', `a write log needs a device of at least ${64 * LOG_ALIGN_BYTES} bytes with alignment dividing ${LOG_ALIGN_BYTES}`, {
        data: { byteLength: device.byteLength, alignmentBytes: device.capabilities.alignmentBytes },
      });
    }
    const log = new WriteLog(device, xxh, state);
    if (state.startOffset % LOG_ALIGN_BYTES !== 0 || state.startOffset >= log.#capacityBytes) {
      throw new DrkitError('CORRUPTION', 'write log start lies outside the log device', { data: { startOffset: state.startOffset, capacityBytes: log.#capacityBytes } });
    }
    await log.#replay();
    return log;
  }

  /** The state as of the last drain (what must be persisted at open: the new epoch). */
  get persistedState(): WriteLogState {
    return this.#state(this.#startOffset, this.#startSeq);
  }

  /** The state to persist with the next commit that drains everything pending. */
  get drainedState(): WriteLogState {
    return this.#state(this.#tail, this.#nextSeq);
  }

  #state(startOffset: number, startSeq: number): WriteLogState {
    const base = { id: this.#logId.toString(16).padStart(16, '0'), startOffset, startSeq, epoch: this.#epoch };
    return this.#holds.size === 0 ? base : { ...base, holds: Object.fromEntries(this.#holds) };
  }

  /** Bytes of data waiting to be drained. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Writes waiting to be drained, in sequence order. */
  get pending(): readonly PendingWrite[] {
    return this.#pending;
  }

  /** Bytes the ring holds (records between the start and the tail). */
  get usedBytes(): number {
    return (this.#tail - this.#spaceStart().offset + this.#capacityBytes) % this.#capacityBytes;
  }

  /** Bytes of drained records kept for holds (between the oldest hold and the start). */
  get retainedBytes(): number {
    return (this.#startOffset - this.#spaceStart().offset + this.#capacityBytes) % this.#capacityBytes;
  }

  /** Holders and the first record each still needs. */
  get holds(): ReadonlyMap<string, LogPosition> {
    return this.#holds;
  }

  /** Where the next record will be appended. */
  get tailPosition(): LogPosition {
    return { seq: this.#nextSeq, offset: this.#tail };
  }

  /** Where the last appended record starts (its sequence number is the one the append returned). */
  get lastRecordOffset(): number {
    return this.#lastRecordOffset;
  }

  /**
   * Keeps the records from `at` on (not before the oldest record still kept) from being
   * reused until {@link releaseHold}; persisted with the next state the tree commits.
   * @throws NOT_FOUND when `at` is no longer (or not yet) in the log
   */
  hold(holderId: string, at: LogPosition): void {
    const oldest = this.#spaceStart();
    if (at.seq < oldest.seq || at.seq > this.#nextSeq || at.offset < 0 || at.offset >= this.#capacityBytes) {
      throw new DrkitError('NOT_FOUND', `write log position ${at.seq} is not retained (oldest kept ${oldest.seq}, next ${this.#nextSeq})`, { data: { seq: at.seq, oldestSeq: oldest.seq, nextSeq: this.#nextSeq } });
    }
    this.#holds.set(holderId, { seq: at.seq, offset: at.offset });
  }

  /** Drops a hold (idempotent). */
  releaseHold(holderId: string): void {
    this.#holds.delete(holderId);
  }

  /** The oldest record the ring must keep: the start, or an older hold. */
  #spaceStart(): LogPosition {
    let oldest: LogPosition = { seq: this.#startSeq, offset: this.#startOffset };
    for (const at of this.#holds.values()) if (at.seq < oldest.seq) oldest = at;
    return oldest;
  }

  /**
   * The records from `from` (a position still kept) up to and including sequence number
   * `toSeq` (appended already), in order: writes, markers and flush records (wrap records
   * are skipped). What a NearSync session ships between two markers. Drained records (and
   * always the first) read back from the device, checked; the rest come from memory.
   * @throws NOT_FOUND for a position no longer kept or a sequence number not yet appended,
   *   CORRUPTION when a kept record does not read back intact
   */
  async *records(from: LogPosition, toSeq: number): AsyncGenerator<LoggedRecord> {
    const oldest = this.#spaceStart();
    if (from.seq < oldest.seq || toSeq >= this.#nextSeq) {
      throw new DrkitError('NOT_FOUND', `write log records ${from.seq}..${toSeq} are not all kept (oldest ${oldest.seq}, next ${this.#nextSeq})`, { data: { fromSeq: from.seq, toSeq, oldestSeq: oldest.seq, nextSeq: this.#nextSeq } });
    }
    let expected = from.seq;
    if (expected > toSeq) return;
    // Drained records read back from the device; the first record always does too, so
    // `from.offset` is checked against the ring (holdWriteLog relies on it). From the
    // start on, the records are still in memory: the same bytes, without a device read.
    let inMemory: { writes: readonly PendingWrite[]; marks: readonly LoggedRecord[] } | undefined;
    for await (const { record } of walkLog(this.#ring(), from, this.#epoch + 1)) {
      expected = record.seq + 1;
      if (record.kind !== LOG_KIND.wrap) yield record;
      if (record.seq >= toSeq) return;
      if (expected >= this.#startSeq) {
        // Taken before the walk's cleanup awaits: a drain meanwhile must not move records out of reach.
        inMemory = { writes: this.#pending, marks: this.#marks };
        break;
      }
    }
    if (inMemory === undefined) throw new DrkitError('CORRUPTION', `write log record ${expected} does not read back intact`, { data: { seq: expected } });
    yield* fromMemory(inMemory.writes, inMemory.marks, expected, toSeq);
  }

  #ring(): LogRing {
    return { device: this.#device, xxh: this.#xxh, logId: this.#logId, capacityBytes: this.#capacityBytes };
  }

  /** Bytes of the device the ring uses. */
  get capacityBytes(): number {
    return this.#capacityBytes;
  }

  /** True when a record of `dataBytes` (plus a flush record and a wrap) fits without draining first. */
  fits(volumeId: string, dataBytes: number): boolean {
    const need = recordBytes(new TextEncoder().encode(volumeId).byteLength, dataBytes) + 2 * LOG_ALIGN_BYTES;
    // The worst case wastes the tail end of the ring on a wrap.
    return this.usedBytes + need + Math.min(need, this.#capacityBytes - this.#tail) < this.#capacityBytes;
  }

  /** True when a pending write of `volumeId` overlaps the range. */
  overlaps(volumeId: string, byteOffset: number, byteLength: number): boolean {
    const pending = this.#byVolume.get(volumeId);
    if (pending === undefined) return false;
    for (let g = Math.floor(byteOffset / GRANULE_BYTES); g <= Math.floor((byteOffset + byteLength - 1) / GRANULE_BYTES); g++) {
      for (const w of pending.byGranule.get(g) ?? []) if (w.byteOffset < byteOffset + byteLength && byteOffset < w.byteOffset + w.data.byteLength) return true;
    }
    return false;
  }

  /**
   * Appends a write (the data is copied) and makes it visible to {@link overlay}. The
   * caller checked {@link fits}.
   * @throws IO_ERROR from the device
   */
  async appendWrite(volumeId: string, byteOffset: number, data: Uint8Array): Promise<void> {
    const seq = await this.#append(LOG_KIND.write, volumeId, byteOffset, data);
    // The pending copy is the record's own data region: the device copied the record, so
    // the encoded buffer is ours, and one copy of the caller's bytes is saved.
    // Neither the log nor the device changes a record after encoding it, so the view stays valid.
    const at = LOG_HEADER_BYTES + utf8(volumeId).byteLength;
    const record = this.#lastRecord!;
    this.#addPending({ seq, volumeId, byteOffset, data: record.subarray(at, at + data.byteLength), endOffset: this.#tail });
  }

  /**
   * Appends a marker naming this point of the write stream for `volumeIds` (a
   * light-weight snapshot); returns its sequence number. Durable with the next flush.
   */
  async appendMarker(volumeIds: readonly string[]): Promise<number> {
    const volumeId = volumeIds.join('\n');
    const seq = await this.#append(LOG_KIND.marker, volumeId, 0, NO_DATA);
    this.#marks.push({ kind: LOG_KIND.marker, seq, volumeId, byteOffset: 0, data: NO_DATA });
    return seq;
  }

  /** Makes every appended record durable: a flush record, then a device flush. */
  async flush(): Promise<void> {
    if (this.#unflushed === 0) return;
    const seq = await this.#append(LOG_KIND.flush, '', 0, NO_DATA);
    this.#marks.push({ kind: LOG_KIND.flush, seq, volumeId: '', byteOffset: 0, data: NO_DATA });
    await this.#device.flush();
    this.#flushedSeq = seq;
    this.#unflushed = 0;
  }

  /**
   * A function that copies the writes of `volumeId` pending now over a read of
   * `[byteOffset, +out.length)`, in order. Take it before reading the block map: a drain
   * that commits meanwhile leaves the map with the same bytes the overlay adds.
   */
  overlayOf(volumeId: string): (byteOffset: number, out: Uint8Array) => void {
    const pending = this.#byVolume.get(volumeId);
    if (pending === undefined || pending.list.length === 0) return () => undefined;
    return (byteOffset, out) => {
      // Per granule the writes are in order, and each one is applied only within it.
      const end = byteOffset + out.byteLength;
      for (let g = Math.floor(byteOffset / GRANULE_BYTES); g <= Math.floor((end - 1) / GRANULE_BYTES); g++) {
        const list = pending.byGranule.get(g);
        if (list === undefined) continue;
        const from = Math.max(byteOffset, g * GRANULE_BYTES);
        const to = Math.min(end, (g + 1) * GRANULE_BYTES);
        overlayList(list, from, out.subarray(from - byteOffset, to - byteOffset));
      }
    };
  }

  /** Writes pending for `volumeId`, in order. */
  pendingOf(volumeId: string): readonly PendingWrite[] {
    return this.#byVolume.get(volumeId)?.list ?? [];
  }


  #addPending(w: PendingWrite): void {
    this.#pending.push(w);
    let pending = this.#byVolume.get(w.volumeId);
    if (pending === undefined) this.#byVolume.set(w.volumeId, (pending = { list: [], byGranule: new Map() }));
    pending.list.push(w);
    for (let g = Math.floor(w.byteOffset / GRANULE_BYTES); g <= Math.floor((w.byteOffset + w.data.byteLength - 1) / GRANULE_BYTES); g++) {
      let list = pending.byGranule.get(g);
      if (list === undefined) pending.byGranule.set(g, (list = []));
      list.push(w);
    }
    this.#pendingBytes += w.data.byteLength;
  }

  /** After the commit that persisted {@link drainedState}: everything pending is applied. */
  drained(state: WriteLogState): void {
    this.#startOffset = state.startOffset;
    this.#startSeq = state.startSeq;
    this.#pending = [];
    this.#marks = this.#marks.filter((m) => m.seq >= state.startSeq);
    this.#byVolume.clear();
    this.#pendingBytes = 0;
  }

  /**
   * The state to persist with the commit that drains the first `count` pending writes
   * (the log then starts at the record after the last of them).
   */
  prefixState(count: number): WriteLogState {
    if (count >= this.#pending.length) return this.drainedState;
    const last = this.#pending[count - 1]!;
    return this.#state(last.endOffset, last.seq + 1);
  }

  /**
   * After the commit that persisted {@link prefixState}(`count`): the first `count`
   * pending writes are applied. The index is rebuilt rather than edited, so an overlay
   * taken before (see {@link overlayOf}) keeps seeing the writes it was taken with.
   */
  drainedPrefix(count: number, state: WriteLogState): void {
    const rest = this.#pending.slice(count);
    this.drained(state);
    for (const w of rest) this.#addPending(w);
  }

  async #append(kind: number, volumeId: string, byteOffset: number, data: Uint8Array): Promise<number> {
    const seq = this.#nextSeq;
    const flushedSeq = this.#flushedSeq;
    let bytes = encodeRecord(this.#xxh, this.#logId, this.#epoch, { kind, seq, volumeId, byteOffset, data, flushedSeq });
    if (this.#tail + bytes.byteLength > this.#capacityBytes) {
      // The record does not fit before the end: a wrap record says where the next one is.
      await this.#device.write(this.#tail, encodeRecord(this.#xxh, this.#logId, this.#epoch, { kind: LOG_KIND.wrap, seq, volumeId: '', byteOffset: 0, data: new Uint8Array(0), flushedSeq }));
      this.#nextSeq++;
      this.#tail = 0;
      bytes = encodeRecord(this.#xxh, this.#logId, this.#epoch, { kind, seq: seq + 1, volumeId, byteOffset, data, flushedSeq });
    }
    await this.#device.write(this.#tail, bytes);
    this.#lastRecordOffset = this.#tail;
    this.#lastRecord = bytes;
    this.#tail += bytes.byteLength;
    if (this.#tail === this.#capacityBytes) this.#tail = 0;
    this.#unflushed++;
    return this.#nextSeq++;
  }

  /**
   * Checks the records kept for holds (from the oldest hold to the start: a hold whose
   * records do not all read back is dropped, its holder re-seeds), then reads records from
   * the start and keeps the writes up to the last flush record.
   */
  async #replay(): Promise<void> {
    const oldest = this.#spaceStart();
    if (oldest.seq < this.#startSeq) {
      let reached = false;
      for await (const { record, endOffset } of walkLog(this.#ring(), oldest, this.#epoch)) {
        if (record.seq === this.#startSeq - 1) {
          reached = endOffset === this.#startOffset;
          break;
        }
      }
      if (!reached) this.#holds.clear();
    }
    const seen: { record: LogRecord; endOffset: number }[] = [];
    let accepted = 0;
    let acceptedEnd = this.#startOffset;
    let acceptedSeq = this.#startSeq;
    let stop: WalkStop = { reason: 'end' };
    for await (const { record, endOffset } of walkLog(this.#ring(), { seq: this.#startSeq, offset: this.#startOffset }, this.#epoch, (s) => (stop = s))) {
      seen.push({ record, endOffset });
      if (record.kind === LOG_KIND.flush) {
        accepted = seen.length;
        acceptedEnd = endOffset;
        acceptedSeq = record.seq + 1;
      }
    }
    const stopped = stop as WalkStop; // assigned by the walk's callback
    if (stopped.reason === 'checksum') await this.#checkTornTail(stopped);
    for (const { record, endOffset } of seen.slice(0, accepted)) {
      if (record.kind === LOG_KIND.marker || record.kind === LOG_KIND.flush) this.#marks.push({ kind: record.kind, seq: record.seq, volumeId: record.volumeId, byteOffset: 0, data: NO_DATA });
      if (record.kind !== LOG_KIND.write || record.data.byteLength === 0) continue;
      this.#addPending({ seq: record.seq, volumeId: record.volumeId, byteOffset: record.byteOffset, data: record.data, endOffset });
    }
    // Records after the last flush record were never acknowledged as durable: overwrite them.
    this.#tail = acceptedEnd;
    this.#nextSeq = acceptedSeq;
    // What the replay kept is on the device now; one flush makes it durable, so the records
    // this open appends may say so (their flushedSeq).
    await this.#device.flush();
    this.#flushedSeq = acceptedSeq - 1;
  }

  /**
   * The chain ended at a record whose checksum fails: a torn tail, unless a record written
   * after it says it was durable (its flushedSeq covers it), in which case flushed data
   * was damaged and replaying past it would silently lose acknowledged writes.
   * @throws CORRUPTION
   */
  async #checkTornTail(bad: Extract<WalkStop, { reason: 'checksum' }>): Promise<void> {
    const next = { seq: bad.seq + 1, offset: bad.kind === LOG_KIND.wrap ? 0 : (bad.offset + bad.recordBytes) % this.#capacityBytes };
    for await (const { record } of walkLog(this.#ring(), next, this.#epoch)) {
      if (record.flushedSeq >= bad.seq) {
        throw new DrkitError('CORRUPTION', `write log record ${bad.seq} failed its checksum, but record ${record.seq} written after it says it was durable`, {
          data: { seq: bad.seq, byteOffset: bad.offset, provenBy: record.seq },
        });
      }
    }
  }
}

/** Copies the writes of `list` that overlap `[byteOffset, +out.length)` over `out`, in order. */
export function overlayList(list: readonly PendingWrite[], byteOffset: number, out: Uint8Array): void {
  const end = byteOffset + out.byteLength;
  for (const w of list) {
    const wEnd = w.byteOffset + w.data.byteLength;
    if (w.byteOffset >= end || wEnd <= byteOffset) continue;
    const from = Math.max(byteOffset, w.byteOffset);
    const to = Math.min(end, wEnd);
    out.set(w.data.subarray(from - w.byteOffset, to - w.byteOffset), from - byteOffset);
  }
}

/**
 * The records not yet drained (`writes` and `marks` of a log, taken together: a drain
 * replaces both lists, appends only add records after every one asked for) from sequence
 * number `fromSeq` (at or after the log's start) up to `toSeq`, in order.
 */
function* fromMemory(writes: readonly PendingWrite[], marks: readonly LoggedRecord[], fromSeq: number, toSeq: number): Generator<LoggedRecord> {
  let i = firstAtOrAfter(writes, fromSeq);
  let j = firstAtOrAfter(marks, fromSeq);
  for (;;) {
    const w = writes[i];
    const m = marks[j];
    if (w !== undefined && (m === undefined || w.seq < m.seq)) {
      if (w.seq > toSeq) return;
      i++;
      yield { kind: LOG_KIND.write, seq: w.seq, volumeId: w.volumeId, byteOffset: w.byteOffset, data: w.data };
    } else if (m !== undefined) {
      if (m.seq > toSeq) return;
      j++;
      yield m;
    } else return;
  }
}

/** Index of the first of `list` (in sequence order) at or after `seq`. */
function firstAtOrAfter(list: readonly { readonly seq: number }[], seq: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
