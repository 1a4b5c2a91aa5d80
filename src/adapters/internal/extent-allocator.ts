/**
 * Free-space allocator of the DeviceExtentStore: hands out unit-aligned byte ranges of a
 * device and takes them back, coalescing neighbours.
 *
 * It is rebuilt on open from the set of allocated ranges (the extent index is the truth;
 * free space is the device minus what the index references), so it has no on-disk form
 * of its own and can never disagree with the index after a crash.
 *
 * Structure: free ranges are kept in two maps (start -> length, end -> start) so a freed
 * range finds and merges its neighbours in O(1), plus size-class buckets (class k holds
 * ranges of [2^k, 2^(k+1)) units) for a good fit without scanning every fragment, in the
 * manner of TLSF. Allocation takes the best fit among a bounded number of candidates of
 * the request's own class, else the first range of a larger class, and splits it.
 */
import { DrkitError } from '../../core/errors.js';

/**
 * How many ranges of the request's own size class are examined for a best fit before
 * falling back to splitting a range of a larger class. Bounds allocate() to O(1) work
 * even with many fragments; 32 probes find an exact or near fit in practice.
 */
const MAX_FIT_PROBES = 32;

/** A byte range on the device. */
export interface AllocatedRange {
  readonly byteOffset: number;
  readonly byteLength: number;
}

/** Unit-granular free-space map over `[0, capacityBytes)`. */
export class ExtentAllocator {
  readonly unitBytes: number;
  #capacityBytes: number;
  #freeBytes = 0;
  /** Free range start (bytes) -> length (bytes). */
  readonly #byStart = new Map<number, number>();
  /** Free range end (bytes, exclusive) -> start (bytes). */
  readonly #byEnd = new Map<number, number>();
  /** Size class -> starts of free ranges in that class. */
  readonly #buckets: Set<number>[] = [];

  private constructor(unitBytes: number, capacityBytes: number) {
    this.unitBytes = unitBytes;
    this.#capacityBytes = capacityBytes;
  }

  /**
   * Builds the allocator for a device of `capacityBytes` on which `allocated` ranges are
   * in use. Ranges are rounded out to whole units. Capacity is rounded down to a unit (a
   * partial unit at the end is never handed out) but raised to cover every allocated range.
   * @throws CORRUPTION when two allocated ranges overlap (the index references the same bytes twice)
   */
  static fromAllocated(unitBytes: number, capacityBytes: number, allocated: Iterable<AllocatedRange>): ExtentAllocator {
    const ranges: [number, number][] = [];
    for (const r of allocated) {
      if (r.byteLength === 0) continue;
      const start = Math.floor(r.byteOffset / unitBytes) * unitBytes;
      const end = Math.ceil((r.byteOffset + r.byteLength) / unitBytes) * unitBytes;
      ranges.push([start, end]);
    }
    ranges.sort((a, b) => a[0] - b[0]);
    let capacity = Math.floor(capacityBytes / unitBytes) * unitBytes;
    const alloc = new ExtentAllocator(unitBytes, capacity);
    let cursor = 0;
    for (const [start, end] of ranges) {
      if (start < cursor) {
        throw new DrkitError('CORRUPTION', `extent index references overlapping device ranges at byte ${start}`, {
          data: { byteOffset: start, previousEndByte: cursor },
        });
      }
      if (start > cursor) alloc.#insert(cursor, start - cursor);
      cursor = end;
    }
    if (cursor > capacity) capacity = cursor;
    alloc.#capacityBytes = capacity;
    if (capacity > cursor) alloc.#insert(cursor, capacity - cursor);
    return alloc;
  }

  /** Bytes the allocator manages (a multiple of the unit). */
  get capacityBytes(): number {
    return this.#capacityBytes;
  }

  /** Bytes available to allocate now. */
  get freeBytes(): number {
    return this.#freeBytes;
  }

  /** Bytes handed out (including ranges freed by callers that have not yet been returned). */
  get allocatedBytes(): number {
    return this.#capacityBytes - this.#freeBytes;
  }

  /** Number of free fragments (for tests and stats). */
  get fragmentCount(): number {
    return this.#byStart.size;
  }

  /** `byteLength` rounded up to whole units: the space an extent of that length occupies. */
  roundUp(byteLength: number): number {
    return Math.ceil(byteLength / this.unitBytes) * this.unitBytes;
  }

  /**
   * Allocates `roundUp(byteLength)` bytes; returns the offset, or undefined when no free
   * range is large enough (the caller may {@link grow} and retry). Zero-length requests
   * return undefined too: they need no space and callers must not ask.
   */
  allocate(byteLength: number): number | undefined {
    const need = this.roundUp(byteLength);
    if (need === 0) return undefined;
    const cls = sizeClass(need / this.unitBytes);
    let bestStart: number | undefined;
    let bestLength = Infinity;
    const own = this.#buckets[cls];
    if (own) {
      let probes = 0;
      for (const start of own) {
        const length = this.#byStart.get(start)!;
        if (length >= need && (length < bestLength || (length === bestLength && start < bestStart!))) {
          bestStart = start;
          bestLength = length;
          if (length === need) break;
        }
        if (++probes >= MAX_FIT_PROBES) break;
      }
    }
    for (let k = cls + 1; bestStart === undefined && k < this.#buckets.length; k++) {
      const bucket = this.#buckets[k];
      if (!bucket || bucket.size === 0) continue;
      const start = bucket.values().next().value as number;
      bestStart = start;
      bestLength = this.#byStart.get(start)!;
    }
    if (bestStart === undefined) return undefined;
    this.#remove(bestStart, bestLength);
    if (bestLength > need) this.#insert(bestStart + need, bestLength - need);
    return bestStart;
  }

  /**
   * Returns a range to the free map, merging it with free neighbours.
   * @throws INTERNAL when the range is not unit-aligned, lies outside the capacity or overlaps free space (a double free)
   */
  free(byteOffset: number, byteLength: number): void {
    const length = this.roundUp(byteLength);
    if (length === 0) return;
    if (byteOffset % this.unitBytes !== 0 || byteOffset < 0 || byteOffset + length > this.#capacityBytes) {
      throw new DrkitError('INTERNAL', `allocator: bad free of [${byteOffset}, ${byteOffset + length})`, {
        data: { byteOffset, byteLength, capacityBytes: this.#capacityBytes },
      });
    }
    this.#assertNotFree(byteOffset, length);
    let start = byteOffset;
    let end = byteOffset + length;
    const before = this.#byEnd.get(start);
    if (before !== undefined) {
      this.#remove(before, start - before);
      start = before;
    }
    const afterLength = this.#byStart.get(end);
    if (afterLength !== undefined) {
      this.#remove(end, afterLength);
      end += afterLength;
    }
    this.#insert(start, end - start);
  }

  /** Extends the capacity to `capacityBytes` (rounded down to a unit); the new tail is free. */
  grow(capacityBytes: number): void {
    const capacity = Math.floor(capacityBytes / this.unitBytes) * this.unitBytes;
    if (capacity <= this.#capacityBytes) return;
    const oldCapacity = this.#capacityBytes;
    this.#capacityBytes = capacity;
    this.free(oldCapacity, capacity - oldCapacity);
  }

  /** Free ranges in offset order (for tests and diagnostics). */
  freeRanges(): AllocatedRange[] {
    return [...this.#byStart]
      .sort((a, b) => a[0] - b[0])
      .map(([byteOffset, byteLength]) => ({ byteOffset, byteLength }));
  }

  /** A double free would silently hand the same bytes to two extents; catch it here. */
  #assertNotFree(start: number, length: number): void {
    const end = start + length;
    // Only a free range that starts inside [start, end) or contains `start` can overlap.
    // Checking every unit would be O(length); instead probe the neighbours we can find in
    // O(1) and, for small fragment counts, scan. Large stores rely on the neighbour probes.
    if (this.#byStart.has(start)) this.#doubleFree(start, length);
    if (this.#byStart.size <= 64) {
      for (const [s, l] of this.#byStart) if (s < end && s + l > start) this.#doubleFree(start, length);
    }
  }

  #doubleFree(start: number, length: number): never {
    throw new DrkitError('INTERNAL', `allocator: [${start}, ${start + length}) is already free`, {
      data: { byteOffset: start, byteLength: length },
    });
  }

  #insert(start: number, length: number): void {
    this.#byStart.set(start, length);
    this.#byEnd.set(start + length, start);
    const cls = sizeClass(length / this.unitBytes);
    while (this.#buckets.length <= cls) this.#buckets.push(new Set());
    this.#buckets[cls]!.add(start);
    this.#freeBytes += length;
  }

  #remove(start: number, length: number): void {
    this.#byStart.delete(start);
    this.#byEnd.delete(start + length);
    this.#buckets[sizeClass(length / this.unitBytes)]!.delete(start);
    this.#freeBytes -= length;
  }
}

/** floor(log2(units)) for units >= 1. */
function sizeClass(units: number): number {
  return 31 - Math.clz32(Math.min(units, 0x7fffffff));
}
