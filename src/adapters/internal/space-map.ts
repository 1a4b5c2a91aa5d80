/**
 * Persistent free-space map of the DeviceExtentStore (format v2): which allocation units
 * of the device are in use, kept in the MetaStore as one bitmap per **space group** (a
 * fixed run of units, as XFS allocation groups or BlueStore's bitmap allocator), read
 * through a byte-budgeted cache. Opening the store therefore reads no space metadata
 * at all, and memory does not grow with the device.
 *
 * Promise, together with the store's commit ordering: the bitmaps on the MetaStore are
 * changed only in the same atomic batch as the index entries that make the change true
 * (an allocation is persisted with the entry that points at it, a free with the delete
 * of the entry that pointed at it). So after a crash the persisted map covers exactly
 * the persisted index, and free space needs no rebuild.
 *
 * In memory, a group's **working** bitmap is the persisted bitmap plus allocations not
 * yet committed; it differs from the persisted one only while the group is dirty, and a
 * dirty group is pinned (never evicted) until its commit. Frees are not applied to the
 * working bitmap until the batch that persists them has resolved durably, so space of a
 * delete is never handed out while a crash could still bring the delete back.
 *
 * A range never spans two groups (a group is at least as large as the largest extent).
 */
import { DrkitError } from '../../core/errors.js';
import { LruCache } from '../../core/lru-cache.js';
import type { MetaOp, MetaStore } from '../meta-store.js';

/** Units per group unless extents need more: 32,768 bits = a 4 KiB bitmap (128 MiB at 4 KiB units). */
export const MIN_GROUP_UNITS = 32768;

/**
 * Estimated heap bytes a cached group costs beyond its bitmap (object, map entry): a
 * guess on the high side, so the budget errs towards using less memory.
 */
const GROUP_OVERHEAD_BYTES = 200;

/** Where the map persists. */
export interface SpaceMapKeys {
  /** Key of a group's bitmap (value: the bitmap, bit = 1 when the unit is in use). */
  bitmap(group: number): Uint8Array;
  /** Key of a group's summary (value: u32le free units). */
  summary(group: number): Uint8Array;
  /** Prefix of every summary key, for iteration in group order. */
  readonly summaryPrefix: Uint8Array;
  /** The group of a summary key. */
  groupOfSummary(key: Uint8Array): number;
}

/** Shape of the map, fixed when the store is created (except the capacity, which grows). */
export interface SpaceGeometry {
  readonly unitBytes: number;
  readonly groupUnits: number;
  /** Units reserved at the start of the device (the superblock); always in use. */
  readonly reservedUnits: number;
}

interface Group {
  readonly bits: Uint8Array;
  /** Units set in `bits`. */
  usedUnits: number;
  /** Next unit to try (next-fit within the group). */
  cursorUnit: number;
}

/** A byte range of the device. */
export interface SpaceRange {
  readonly byteOffset: number;
  readonly byteLength: number;
}

/** The persistent unit bitmap of one device. */
export class SpaceMap {
  readonly unitBytes: number;
  readonly groupUnits: number;
  readonly #meta: MetaStore;
  readonly #keys: SpaceMapKeys;
  readonly #reservedUnits: number;
  readonly #clean: LruCache<number, Group>;
  readonly #dirty = new Map<number, Group>();
  #capacityUnits: number;
  #usedUnits: number;
  #cursorGroup: number;

  /**
   * @param usedUnits units in use as last committed (from the store's counters record)
   * @param cursorGroup group allocation continues in (from the counters record)
   * @param cacheBytes budget of clean cached bitmaps
   */
  constructor(
    meta: MetaStore,
    keys: SpaceMapKeys,
    geometry: SpaceGeometry,
    state: { capacityBytes: number; usedUnits: number; cursorGroup: number },
    cacheBytes: number,
  ) {
    this.#meta = meta;
    this.#keys = keys;
    this.unitBytes = geometry.unitBytes;
    this.groupUnits = geometry.groupUnits;
    this.#reservedUnits = geometry.reservedUnits;
    this.#capacityUnits = Math.floor(state.capacityBytes / geometry.unitBytes);
    this.#usedUnits = state.usedUnits;
    this.#cursorGroup = state.cursorGroup;
    this.#clean = new LruCache(cacheBytes);
  }

  /** Bytes the map manages (a multiple of the unit). */
  get capacityBytes(): number {
    return this.#capacityUnits * this.unitBytes;
  }

  /** Bytes in use, including allocations not yet committed and frees not yet durable. */
  get allocatedBytes(): number {
    return this.#usedUnits * this.unitBytes;
  }

  /** Units in use (persisted by the store with each commit). */
  get usedUnits(): number {
    return this.#usedUnits;
  }

  /** Bytes free within the capacity. */
  get freeBytes(): number {
    return (this.#capacityUnits - this.#usedUnits) * this.unitBytes;
  }

  /** True when a group differs from its persisted bitmap. */
  get dirty(): boolean {
    return this.#dirty.size > 0;
  }

  /** The group allocation continues in (persisted by the store). */
  get cursorGroup(): number {
    return this.#cursorGroup;
  }

  /** `byteLength` rounded up to whole units. */
  roundUp(byteLength: number): number {
    return Math.ceil(byteLength / this.unitBytes) * this.unitBytes;
  }

  /** Extends the capacity (the new units are free). */
  grow(capacityBytes: number): void {
    const units = Math.floor(capacityBytes / this.unitBytes);
    if (units > this.#capacityUnits) this.#capacityUnits = units;
  }

  /**
   * Allocates `roundUp(byteLength)` bytes, next-fit from the cursor group; undefined when no
   * group has a free run that long (the caller grows the device and retries).
   * @throws INTERNAL for a zero or oversized request
   */
  async allocate(byteLength: number): Promise<number | undefined> {
    const need = Math.ceil(byteLength / this.unitBytes);
    if (need === 0 || need > this.groupUnits) {
      throw new DrkitError('INTERNAL', `space map: cannot allocate ${byteLength} bytes`, { data: { byteLength, groupUnits: this.groupUnits } });
    }
    const groupCount = Math.ceil(this.#capacityUnits / this.groupUnits);
    if (groupCount === 0) return undefined;
    const start = Math.min(this.#cursorGroup, groupCount - 1);
    for (let i = 0; i < groupCount; i++) {
      const g = (start + i) % groupCount;
      // Skip persisted-full groups without loading their bitmaps.
      if (i > 0 && !this.#dirty.has(g) && !this.#clean.has(g) && (await this.#persistedFreeUnits(g)) < need) continue;
      const group = await this.#group(g);
      const limit = this.#limitUnits(g);
      const at = findFreeRun(group.bits, need, group.cursorUnit, limit) ?? (group.cursorUnit > 0 ? findFreeRun(group.bits, need, 0, limit) : undefined);
      if (at === undefined) continue;
      setBits(group.bits, at, need, true);
      group.usedUnits += need;
      group.cursorUnit = at + need;
      this.#usedUnits += need;
      this.#markDirty(g, group);
      this.#cursorGroup = g;
      return (g * this.groupUnits + at) * this.unitBytes;
    }
    return undefined;
  }

  /**
   * Takes back an allocation that was never committed (its write failed): free at once,
   * since nothing can reference it.
   */
  async release(byteOffset: number, byteLength: number): Promise<void> {
    const [g, at, units] = this.#locate(byteOffset, byteLength);
    const group = await this.#group(g);
    setBits(group.bits, at, units, false);
    group.usedUnits -= units;
    this.#usedUnits -= units;
    this.#markDirty(g, group);
  }

  /**
   * The ops that persist every dirty group with `frees` applied, and a function to call
   * once those ops are durably committed (it applies the frees in memory and marks the
   * groups clean). Nothing changes in memory until then, so a failed commit can be retried.
   * @throws INTERNAL when a freed range is not in use (a double free)
   */
  async commitOps(frees: readonly SpaceRange[]): Promise<{ ops: MetaOp[]; usedUnitsAfter: number; apply: () => void }> {
    const staged = new Map<number, Uint8Array>();
    for (const [g, group] of this.#dirty) staged.set(g, group.bits.slice());
    const freed: [number, number, number][] = [];
    for (const r of frees) {
      if (r.byteLength === 0) continue;
      const [g, at, units] = this.#locate(r.byteOffset, r.byteLength);
      let bits = staged.get(g);
      if (bits === undefined) {
        bits = (await this.#group(g)).bits.slice();
        staged.set(g, bits);
      }
      if (!allBits(bits, at, units)) {
        throw new DrkitError('INTERNAL', `space map: [${r.byteOffset}, ${r.byteOffset + units * this.unitBytes}) freed but not in use`, {
          data: { byteOffset: r.byteOffset, byteLength: r.byteLength },
        });
      }
      setBits(bits, at, units, false);
      freed.push([g, at, units]);
    }
    const ops: MetaOp[] = [];
    const usedUnitsAfter = this.#usedUnits - freed.reduce((n, [, , units]) => n + units, 0);
    for (const [g, bits] of staged) {
      const summary = new Uint8Array(4);
      new DataView(summary.buffer).setUint32(0, this.#limitUnits(g) - countBits(bits, 0, this.#limitUnits(g)), true);
      ops.push({ kind: 'put', key: this.#keys.bitmap(g), value: bits }, { kind: 'put', key: this.#keys.summary(g), value: summary });
    }
    const apply = (): void => {
      for (const [g, at, units] of freed) {
        this.#usedUnits -= units;
        // An evicted group needs nothing: its persisted bitmap already has the free.
        const group = this.#dirty.get(g) ?? this.#clean.peek(g);
        if (group === undefined) continue;
        setBits(group.bits, at, units, false);
        group.usedUnits -= units;
        if (at < group.cursorUnit) group.cursorUnit = at;
      }
      for (const [g, group] of this.#dirty) this.#clean.set(g, group, group.bits.byteLength + GROUP_OVERHEAD_BYTES);
      this.#dirty.clear();
    };
    return { ops, usedUnitsAfter, apply };
  }

  /** Units of group `g` that exist (the last group may be partial). */
  #limitUnits(g: number): number {
    return Math.min(this.groupUnits, this.#capacityUnits - g * this.groupUnits);
  }

  #locate(byteOffset: number, byteLength: number): [group: number, unit: number, units: number] {
    const first = byteOffset / this.unitBytes;
    const units = Math.ceil(byteLength / this.unitBytes);
    const g = Math.floor(first / this.groupUnits);
    const at = first - g * this.groupUnits;
    if (!Number.isInteger(first) || units <= 0 || at + units > this.groupUnits || first + units > this.#capacityUnits) {
      throw new DrkitError('INTERNAL', `space map: bad range [${byteOffset}, +${byteLength})`, { data: { byteOffset, byteLength } });
    }
    return [g, at, units];
  }

  #markDirty(g: number, group: Group): void {
    if (this.#dirty.has(g)) return;
    this.#clean.delete(g);
    this.#dirty.set(g, group);
  }

  async #persistedFreeUnits(g: number): Promise<number> {
    const value = await this.#meta.get(this.#keys.summary(g));
    if (value === undefined) return this.#limitUnits(g) - (g === 0 ? this.#reservedUnits : 0);
    if (value.byteLength !== 4) throw new DrkitError('CORRUPTION', `space group ${g} summary is malformed`, { data: { group: g } });
    return new DataView(value.buffer, value.byteOffset, 4).getUint32(0, true);
  }

  /** The working bitmap of a group, loaded when not in memory. */
  async #group(g: number): Promise<Group> {
    const dirty = this.#dirty.get(g);
    if (dirty !== undefined) return dirty;
    const cached = this.#clean.get(g);
    if (cached !== undefined) return cached;
    const bitmapBytes = this.groupUnits / 8;
    const value = await this.#meta.get(this.#keys.bitmap(g));
    let bits: Uint8Array;
    if (value === undefined) {
      bits = new Uint8Array(bitmapBytes);
      if (g === 0) setBits(bits, 0, Math.min(this.#reservedUnits, this.groupUnits), true);
    } else {
      if (value.byteLength !== bitmapBytes) {
        throw new DrkitError('CORRUPTION', `space group ${g} bitmap is ${value.byteLength} bytes, not ${bitmapBytes}`, { data: { group: g } });
      }
      bits = value.slice();
    }
    const group: Group = { bits, usedUnits: countBits(bits, 0, this.groupUnits), cursorUnit: 0 };
    this.#clean.set(g, group, bitmapBytes + GROUP_OVERHEAD_BYTES);
    return group;
  }
}

/** First unit of a run of `need` clear bits in [from, limit), or undefined. */
export function findFreeRun(bits: Uint8Array, need: number, from: number, limit: number): number | undefined {
  let run = 0;
  let runStart = from;
  let u = from;
  while (u < limit) {
    // Skip whole bytes in use when aligned.
    if ((u & 7) === 0 && run === 0 && bits[u >> 3] === 0xff) {
      u += 8;
      runStart = u;
      continue;
    }
    if ((bits[u >> 3]! >> (u & 7)) & 1) {
      run = 0;
      runStart = u + 1;
    } else if (++run === need) {
      return runStart;
    }
    u++;
  }
  return undefined;
}

/** Sets or clears `count` bits from `from`. */
export function setBits(bits: Uint8Array, from: number, count: number, value: boolean): void {
  for (let u = from; u < from + count; u++) {
    if (value) bits[u >> 3]! |= 1 << (u & 7);
    else bits[u >> 3]! &= ~(1 << (u & 7));
  }
}

/** True when every bit of [from, from + count) is set. */
function allBits(bits: Uint8Array, from: number, count: number): boolean {
  for (let u = from; u < from + count; u++) if (((bits[u >> 3]! >> (u & 7)) & 1) === 0) return false;
  return true;
}

/** Set bits in [from, to). */
export function countBits(bits: Uint8Array, from: number, to: number): number {
  let n = 0;
  let u = from;
  while (u < to && (u & 7) !== 0) n += (bits[u >> 3]! >> (u++ & 7)) & 1;
  while (u + 8 <= to) {
    let x = bits[u >> 3]!;
    x = x - ((x >> 1) & 0x55);
    x = (x & 0x33) + ((x >> 2) & 0x33);
    n += (x + (x >> 4)) & 0x0f;
    u += 8;
  }
  while (u < to) n += (bits[u >> 3]! >> (u++ & 7)) & 1;
  return n;
}
