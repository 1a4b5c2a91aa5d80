/**
 * FaultyBlockDevice: a seeded fault injector around any BlockDevice, for crash-testing
 * what is built on block devices (stores, volumes, logs).
 *
 * Fault model (every choice is drawn from a mulberry32 PRNG seeded by `options.seed`, so
 * a seed replays exactly when the workload is deterministic):
 * - Volatile cache. Writes (and discards) since the last `flush()` live in an overlay in
 *   this wrapper; reads see them. `flush()` applies them in order to the inner device and
 *   flushes it: the inner device is the "platter" and holds only durable data.
 * - Crash. `crash()` (or a trigger: `crashAfterWrites(n)`, `crashAtRandom(p)`) kills the
 *   wrapper: every later call rejects with `CRASHED`. Each unflushed write is then
 *   independently kept (probability `keepProbability`) or dropped, and the kept ones
 *   are applied to the inner device in order. With probability `tornWriteProbability`
 *   the last kept write is torn: only a seeded prefix of it, ending on a
 *   `tornSectorBytes` boundary (512 B by default), is applied. A write that does not
 *   cross such a boundary is never torn (it is atomic). A write call during which a
 *   trigger fires is itself an unflushed write candidate, and rejects with `CRASHED`.
 *   Bytes durable before the crash are never changed. The user then wraps the same
 *   inner device in a new FaultyBlockDevice (or reopens their store on it): exactly
 *   what a restart after power loss sees.
 * - Bit rot. `flipBits({ count })` flips seeded bits in the inner (durable) data.
 *   `readBitFlipProbability` flips one bit in the data a read returns, leaving the
 *   device unchanged (a bad cable, not a bad disk).
 * - Transient I/O errors. `injectFault(op, { probability, nthCall })` fails reads,
 *   writes or flushes with `INJECTED_FAULT` (transient); a failed call changes nothing.
 * - `resize()` goes straight to the inner device and counts as durable at once.
 * - `close()` on a live wrapper applies pending writes to the inner device without
 *   flushing it (a clean shutdown) and closes the inner device if `ownsInner`.
 */
import type { BlockDevice, BlockDeviceCapabilities, BlockRead, BlockWrite, IoOptions } from '../adapters/block-device.js';
import { DrkitError } from '../core/errors.js';
import { assertNonNegativeInteger, assertPositiveInteger } from '../core/validate.js';
import {
  assertOpen,
  checkExtent,
  checkNewLength,
  checkOptions,
  checkReads,
  checkWrite,
  checkWrites,
  freezeCapabilities,
  requireCapability,
} from '../adapters/internal/device-guard.js';
import { SeededPrng } from './internal/seeded-prng.js';

/** An operation kind that {@link FaultyBlockDevice.injectFault} can fail. */
export type FaultyOp = 'read' | 'write' | 'flush';

/** When an injected fault fires. Both may be set; either fires it. */
export interface FaultRule {
  /** Chance each call of the kind fails. @defaultValue 0 */
  probability?: number;
  /** The nth call of the kind from now (1 = the next) fails, once. */
  nthCall?: number;
}

/** Options of {@link FaultyBlockDevice}. */
export interface FaultyBlockDeviceOptions {
  /** Seed of every random choice. */
  seed: number;
  /** Chance that each unflushed write survives a crash. @defaultValue 0.5 */
  keepProbability?: number;
  /** Chance that a crash tears the last kept write. @defaultValue 0.5 */
  tornWriteProbability?: number;
  /** Granularity of torn writes; also declared as `atomicWriteBytes`. @defaultValue max(512, inner alignmentBytes) */
  tornSectorBytes?: number;
  /** Chance that a read returns data with one bit flipped (device unchanged). @defaultValue 0 */
  readBitFlipProbability?: number;
  /** Initial transient-fault rules. @defaultValue none */
  faults?: Partial<Record<FaultyOp, FaultRule>>;
  /** Close the inner device when this wrapper is closed (not when it crashes). @defaultValue true */
  ownsInner?: boolean;
}

/** What one crash did to the unflushed writes. */
export interface CrashOutcome {
  readonly unflushedWrites: number;
  readonly keptWrites: number;
  readonly droppedWrites: number;
  /** The torn write, if any: `appliedBytes` of its `byteLength` reached the device. */
  readonly torn?: { readonly byteOffset: number; readonly byteLength: number; readonly appliedBytes: number };
}

/** Counters of a {@link FaultyBlockDevice}. */
export interface FaultyBlockDeviceStats {
  reads: number;
  writes: number;
  flushes: number;
  crashes: number;
  faultsInjected: number;
  bitsFlipped: number;
  readBitFlips: number;
  /** Writes currently held in the volatile overlay. */
  unflushedWrites: number;
}

/** One unflushed write; `data` undefined means zeros (a discard). */
interface PendingWrite {
  readonly byteOffset: number;
  byteLength: number;
  data: Uint8Array | undefined;
}

interface Rule {
  probability: number;
  countdown: number; // 0 = off
}

/**
 * Wraps `inner` with the fault model in the module header. Capabilities are the inner
 * device's, with `atomicWriteBytes` = `tornSectorBytes`.
 */
export class FaultyBlockDevice implements BlockDevice {
  readonly capabilities: Readonly<BlockDeviceCapabilities>;
  readonly #inner: BlockDevice;
  readonly #prng: SeededPrng;
  readonly #keep: number;
  readonly #tornP: number;
  readonly #sectorBytes: number;
  readonly #readFlipP: number;
  readonly #ownsInner: boolean;
  readonly #rules: Record<FaultyOp, Rule> = {
    read: { probability: 0, countdown: 0 },
    write: { probability: 0, countdown: 0 },
    flush: { probability: 0, countdown: 0 },
  };
  readonly #overlay: PendingWrite[] = [];
  readonly #stats: FaultyBlockDeviceStats = {
    reads: 0, writes: 0, flushes: 0, crashes: 0, faultsInjected: 0, bitsFlipped: 0, readBitFlips: 0, unflushedWrites: 0,
  };
  #crashCountdown = 0;
  #crashProbability = 0;
  #crash: Promise<CrashOutcome> | undefined;
  #closing: Promise<void> | undefined;
  #applying: Promise<unknown> | undefined;

  /** @throws INVALID_ARGUMENT for a malformed device or options */
  constructor(inner: BlockDevice, options: FaultyBlockDeviceOptions) {
    if (inner === null || typeof inner !== 'object') throw new DrkitError('INVALID_ARGUMENT', 'inner must be a BlockDevice');
    if (options === null || typeof options !== 'object' || !Number.isInteger(options.seed)) {
      throw new DrkitError('INVALID_ARGUMENT', 'options.seed must be an integer');
    }
    this.#inner = inner;
    this.#prng = new SeededPrng(options.seed);
    this.#keep = probability(options.keepProbability ?? 0.5, 'keepProbability');
    this.#tornP = probability(options.tornWriteProbability ?? 0.5, 'tornWriteProbability');
    this.#readFlipP = probability(options.readBitFlipProbability ?? 0, 'readBitFlipProbability');
    const caps = freezeCapabilities(inner.capabilities);
    this.#sectorBytes = options.tornSectorBytes ?? Math.max(512, caps.alignmentBytes);
    assertPositiveInteger(this.#sectorBytes, 'tornSectorBytes');
    if (this.#sectorBytes % caps.alignmentBytes !== 0) {
      throw new DrkitError('INVALID_ARGUMENT', `tornSectorBytes must be a multiple of the inner alignment ${caps.alignmentBytes}`);
    }
    this.#ownsInner = options.ownsInner ?? true;
    this.capabilities = Object.freeze({ ...caps, atomicWriteBytes: this.#sectorBytes });
    for (const op of ['read', 'write', 'flush'] as const) {
      const rule = options.faults?.[op];
      if (rule) this.injectFault(op, rule);
    }
  }

  /** Current length in bytes (the inner device's). */
  get byteLength(): number {
    return this.#inner.byteLength;
  }

  /** True once a crash has fired. */
  get crashed(): boolean {
    return this.#crash !== undefined;
  }

  /** A snapshot of the counters. */
  get stats(): Readonly<FaultyBlockDeviceStats> {
    return Object.freeze({ ...this.#stats, unflushedWrites: this.#overlay.length });
  }

  /**
   * Sets (or with `undefined`, clears) the transient-fault rule of one operation kind.
   * @throws INVALID_ARGUMENT
   */
  injectFault(op: FaultyOp, rule: FaultRule | undefined): void {
    if (!(op in this.#rules)) throw new DrkitError('INVALID_ARGUMENT', `unknown fault op ${String(op)}`);
    const p = probability(rule?.probability ?? 0, 'probability');
    if (rule?.nthCall !== undefined) assertPositiveInteger(rule.nthCall, 'nthCall');
    this.#rules[op] = { probability: p, countdown: rule?.nthCall ?? 0 };
  }

  /** The `n`th write call from now (1 = the next) crashes the device. @throws INVALID_ARGUMENT */
  crashAfterWrites(n: number): void {
    assertPositiveInteger(n, 'n');
    this.#crashCountdown = n;
  }

  /** Every later write call crashes the device with this chance. @throws INVALID_ARGUMENT */
  crashAtRandom(chance: number): void {
    this.#crashProbability = probability(chance, 'probability');
  }

  /**
   * Simulates power loss now (see the module header) and resolves with what happened to
   * the unflushed writes. Calling it again returns the first outcome.
   */
  crash(): Promise<CrashOutcome> {
    this.#crash ??= this.#crashNow();
    return this.#crash;
  }

  /**
   * Flips `count` seeded bits in the inner device's data within the range (default: the
   * whole device) and flushes it. Unflushed overlay data masks flips beneath it.
   * @returns the absolute bit indexes flipped (byteOffset * 8 + bit)
   * @throws INVALID_ARGUMENT, OUT_OF_RANGE, CRASHED, NOT_OPEN
   */
  async flipBits(options: { count: number; byteOffset?: number; byteLength?: number }): Promise<number[]> {
    this.#enter(undefined, 'flipBits');
    assertNonNegativeInteger(options.count, 'count');
    const start = options.byteOffset ?? 0;
    const span = options.byteLength ?? this.byteLength - start;
    checkExtent({ byteLength: this.byteLength, capabilities: { ...this.capabilities, alignmentBytes: 1 } }, start, span, 'flipBits');
    if (span === 0 && options.count > 0) throw new DrkitError('INVALID_ARGUMENT', 'flipBits: empty range');
    const align = this.capabilities.alignmentBytes;
    const flipped: number[] = [];
    for (let i = 0; i < options.count; i++) {
      const byte = start + this.#prng.below(span);
      const bit = this.#prng.below(8);
      // Read-modify-write the aligned unit holding the byte, so aligned devices accept it.
      const unit = byte - (byte % align);
      const data = await this.#inner.read(unit, align);
      data[byte - unit] = (data[byte - unit] as number) ^ (1 << bit);
      await this.#inner.write(unit, data);
      flipped.push(byte * 8 + bit);
    }
    await this.#inner.flush();
    this.#stats.bitsFlipped += flipped.length;
    return flipped;
  }

  /** @throws CRASHED, NOT_OPEN, ABORTED, INVALID_ARGUMENT, OUT_OF_RANGE, INJECTED_FAULT */
  async read(byteOffset: number, byteLength: number, options?: IoOptions): Promise<Uint8Array> {
    this.#enter(options, 'read');
    checkExtent(this, byteOffset, byteLength, 'read');
    this.#maybeFault('read');
    this.#stats.reads++;
    const out = await this.#inner.read(byteOffset, byteLength, options);
    this.#assertAlive('read');
    this.#overlayInto(byteOffset, out);
    this.#maybeFlipRead(out);
    return out;
  }

  /** @throws as {@link read} */
  async readv(reads: readonly BlockRead[], options?: IoOptions): Promise<Uint8Array[]> {
    this.#enter(options, 'readv');
    checkReads(this, reads);
    this.#maybeFault('read');
    this.#stats.reads++;
    const out = await this.#inner.readv(reads, options);
    this.#assertAlive('readv');
    reads.forEach((r, i) => {
      this.#overlayInto(r.byteOffset, out[i] as Uint8Array);
      this.#maybeFlipRead(out[i] as Uint8Array);
    });
    return out;
  }

  /** Buffers the write in the volatile overlay. @throws CRASHED, NOT_OPEN, ABORTED, INVALID_ARGUMENT, OUT_OF_RANGE, INJECTED_FAULT */
  async write(byteOffset: number, data: Uint8Array, options?: IoOptions): Promise<void> {
    this.#enter(options, 'write');
    checkWrite(this, byteOffset, data);
    await this.#writeCall([{ byteOffset, byteLength: data.byteLength, data: data.slice() }]);
  }

  /** One write call: a crash trigger fires for the whole batch. @throws as {@link write} */
  async writev(writes: readonly BlockWrite[], options?: IoOptions): Promise<void> {
    this.#enter(options, 'writev');
    checkWrites(this, writes);
    await this.#writeCall(writes.map((w) => ({ byteOffset: w.byteOffset, byteLength: w.data.byteLength, data: w.data.slice() })));
  }

  /** A write of zeros in the crash model. @throws as {@link write}, NOT_SUPPORTED */
  async discard(byteOffset: number, byteLength: number, options?: IoOptions): Promise<void> {
    this.#enter(options, 'discard');
    requireCapability(this, 'discard', 'discard');
    checkExtent(this, byteOffset, byteLength, 'discard');
    await this.#writeCall([{ byteOffset, byteLength, data: undefined }]);
  }

  /** Applies the overlay to the inner device in order, then flushes it. @throws CRASHED, NOT_OPEN, ABORTED, INJECTED_FAULT */
  async flush(options?: IoOptions): Promise<void> {
    this.#enter(options, 'flush');
    this.#maybeFault('flush');
    this.#stats.flushes++;
    await this.#applyPending();
    this.#assertAlive('flush');
    await this.#inner.flush(options);
  }

  /** Resizes the inner device at once (durable immediately); clips the overlay. @throws CRASHED, NOT_OPEN, NOT_SUPPORTED, INVALID_ARGUMENT */
  async resize(byteLength: number, options?: IoOptions): Promise<void> {
    this.#enter(options, 'resize');
    requireCapability(this, 'resizable', 'resize');
    checkNewLength(this, byteLength);
    for (let i = this.#overlay.length - 1; i >= 0; i--) {
      const w = this.#overlay[i] as PendingWrite;
      if (w.byteOffset >= byteLength) this.#overlay.splice(i, 1);
      else if (w.byteOffset + w.byteLength > byteLength) {
        w.byteLength = byteLength - w.byteOffset;
        w.data = w.data?.subarray(0, w.byteLength);
      }
    }
    await this.#inner.resize(byteLength, options);
  }

  /** Idempotent. A live wrapper applies pending writes (no flush); a crashed one leaves the inner device alone. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#crash) return;
      await this.#applyPending();
      if (this.#ownsInner) await this.#inner.close();
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #writeCall(entries: PendingWrite[]): Promise<void> {
    this.#stats.writes++;
    const triggered =
      (this.#crashCountdown > 0 && --this.#crashCountdown === 0) || this.#prng.chance(this.#crashProbability);
    if (triggered) {
      // The write was in progress when power failed: it may or may not land.
      this.#overlay.push(...entries);
      await this.crash();
      throw new DrkitError('CRASHED', 'write: the device crashed during this call');
    }
    this.#maybeFault('write');
    this.#overlay.push(...entries);
  }

  async #applyPending(): Promise<void> {
    // Serialise appliers; a crash waits for one in progress (whose writes then landed).
    while (this.#applying) await this.#applying.catch(() => undefined);
    const count = this.#overlay.length;
    if (count === 0) return;
    const run = (async () => {
      await applyWrites(this.#inner, this.#overlay.slice(0, count));
      this.#overlay.splice(0, count);
    })();
    this.#applying = run;
    try {
      await run;
    } finally {
      this.#applying = undefined;
    }
  }

  async #crashNow(): Promise<CrashOutcome> {
    while (this.#applying) await this.#applying.catch(() => undefined);
    const entries = this.#overlay.splice(0);
    const kept = entries.filter(() => this.#prng.chance(this.#keep));
    let torn: CrashOutcome['torn'];
    const last = kept[kept.length - 1];
    if (last && this.#prng.chance(this.#tornP)) {
      const firstBoundary = (Math.floor(last.byteOffset / this.#sectorBytes) + 1) * this.#sectorBytes;
      const end = last.byteOffset + last.byteLength;
      const boundaries = firstBoundary < end ? Math.ceil((end - firstBoundary) / this.#sectorBytes) : 0;
      if (boundaries > 0) {
        const cut = firstBoundary + this.#prng.below(boundaries) * this.#sectorBytes;
        const appliedBytes = cut - last.byteOffset;
        torn = { byteOffset: last.byteOffset, byteLength: last.byteLength, appliedBytes };
        kept[kept.length - 1] = { byteOffset: last.byteOffset, byteLength: appliedBytes, data: last.data?.subarray(0, appliedBytes) };
      }
    }
    await applyWrites(this.#inner, kept);
    this.#stats.crashes++;
    return Object.freeze({ unflushedWrites: entries.length, keptWrites: kept.length, droppedWrites: entries.length - kept.length, torn });
  }

  #enter(options: IoOptions | undefined, what: string): void {
    this.#assertAlive(what);
    assertOpen(this.#closing === undefined, what);
    checkOptions(options, what);
  }

  #assertAlive(what: string): void {
    if (this.#crash) throw new DrkitError('CRASHED', `${what}: the device has crashed; reopen a new wrapper over the inner device`);
  }

  #maybeFault(op: FaultyOp): void {
    const rule = this.#rules[op];
    const byCount = rule.countdown > 0 && --rule.countdown === 0;
    if (byCount || this.#prng.chance(rule.probability)) {
      this.#stats.faultsInjected++;
      throw new DrkitError('INJECTED_FAULT', `${op}: injected transient fault`, { data: { op } });
    }
  }

  #overlayInto(byteOffset: number, out: Uint8Array): void {
    const end = byteOffset + out.byteLength;
    for (const w of this.#overlay) {
      const from = Math.max(w.byteOffset, byteOffset);
      const to = Math.min(w.byteOffset + w.byteLength, end);
      if (from >= to) continue;
      if (w.data) out.set(w.data.subarray(from - w.byteOffset, to - w.byteOffset), from - byteOffset);
      else out.fill(0, from - byteOffset, to - byteOffset);
    }
  }

  #maybeFlipRead(out: Uint8Array): void {
    if (out.byteLength === 0 || !this.#prng.chance(this.#readFlipP)) return;
    const i = this.#prng.below(out.byteLength);
    out[i] = (out[i] as number) ^ (1 << this.#prng.below(8));
    this.#stats.readBitFlips++;
  }
}

/** Applies writes in order: runs of data writes as one writev, zero ranges as discard. */
async function applyWrites(inner: BlockDevice, writes: readonly PendingWrite[]): Promise<void> {
  let batch: BlockWrite[] = [];
  for (const w of writes) {
    if (w.data) {
      batch.push({ byteOffset: w.byteOffset, data: w.data });
      continue;
    }
    if (batch.length > 0) await inner.writev(batch);
    batch = [];
    if (w.byteLength > 0) await inner.discard(w.byteOffset, w.byteLength);
  }
  if (batch.length > 0) await inner.writev(batch);
}

function probability(value: number, name: string): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw new DrkitError('INVALID_ARGUMENT', `${name} must be a number in [0, 1], got ${String(value)}`, { data: { name } });
  }
  return value;
}
