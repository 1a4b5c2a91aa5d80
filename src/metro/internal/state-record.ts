/**
 * The durable state of one side of a Metro pair: its role, the lease term (generation)
 * it last wrote or accepted writes at, and whether an operator forced it writable.
 *
 * Durability promise: `save()` resolves once the record is durable. It alternates
 * between two 4 KiB slots at the start of the metadata device, each with a sequence
 * number and an xxh64, so a torn or lost slot write leaves the previous record readable;
 * `load()` takes the valid slot with the higher sequence number.
 */
import { loadXxh64, type Xxh64 } from '../../core/checksum.js';
import { DrkitError } from '../../core/errors.js';
import type { BlockDevice } from '../../adapters/block-device.js';
import { parseJsonPayload } from '../../replication/internal/json-shape.js';

/** Bytes of one slot; two slots precede the bitmap (dirty-regions.ts BITMAP_BYTE_OFFSET). */
const SLOT_BYTES = 4096;
/** Format version of the record. */
const STATE_FORMAT = 1;
const MAGIC = 0x4d45_5452; // "METR"
/** Slot header: magic u32, format u32, seq u64, json length u32, xxh64 u64 (over header bytes 0..20 and the json). */
const SLOT_HEADER_BYTES = 28;

/** Role of a side. */
export type MetroRole = 'active' | 'standby';

/** What a side records durably. */
export interface StateRecord {
  readonly pairId: string;
  readonly siteId: string;
  readonly role: MetroRole;
  /** Lease term this side last held (active) or accepted writes at (standby); 0 before any. */
  readonly term: number;
  /** Set when an operator forced this side writable without the witness. */
  readonly forcedAtMs: number | undefined;
}

/** Reads and writes the two slots. */
export class StateStore {
  readonly #device: BlockDevice;
  readonly #xxh64: Xxh64;
  #seq: number;
  #record: StateRecord;

  private constructor(device: BlockDevice, xxh64: Xxh64, seq: number, record: StateRecord) {
    this.#device = device;
    this.#xxh64 = xxh64;
    this.#seq = seq;
    this.#record = record;
  }

  /**
   * Loads the record, or writes `initial` on a device holding none.
   * @throws INVALID_ARGUMENT (the record names another pair or site), CORRUPTION (both slots hold a record, neither valid), FORMAT_VERSION
   */
  static async open(device: BlockDevice, initial: StateRecord): Promise<StateStore> {
    const xxh64 = await loadXxh64();
    const slots = await Promise.all([0, 1].map(async (i) => decodeSlot(xxh64, await device.read(i * SLOT_BYTES, SLOT_BYTES))));
    const valid = slots.filter((s): s is Decoded => s !== undefined && s !== 'invalid').sort((a, b) => b.seq - a.seq);
    if (valid.length === 0) {
      if (slots.includes('invalid')) throw new DrkitError('CORRUPTION', 'no Metro state slot passes its checksum');
      const store = new StateStore(device, xxh64, 0, initial);
      await store.save(initial);
      return store;
    }
    const best = valid[0]!;
    if (best.record.pairId !== initial.pairId || best.record.siteId !== initial.siteId) {
      throw new DrkitError('INVALID_ARGUMENT', `metadata device belongs to pair ${best.record.pairId} site ${best.record.siteId}, not ${initial.pairId} ${initial.siteId}`);
    }
    return new StateStore(device, xxh64, best.seq, best.record);
  }

  get record(): StateRecord {
    return this.#record;
  }

  /** Writes `record` durably into the older slot. */
  async save(record: StateRecord): Promise<void> {
    const seq = this.#seq + 1;
    const json = new TextEncoder().encode(JSON.stringify({ ...record, forced: record.forcedAtMs !== undefined, forcedAtMs: record.forcedAtMs ?? 0 }));
    if (json.length > SLOT_BYTES - SLOT_HEADER_BYTES) throw new DrkitError('INVALID_ARGUMENT', 'Metro state record exceeds its slot');
    const slot = new Uint8Array(SLOT_BYTES);
    const view = new DataView(slot.buffer);
    view.setUint32(0, MAGIC);
    view.setUint32(4, STATE_FORMAT);
    view.setBigUint64(8, BigInt(seq));
    view.setUint32(16, json.length);
    slot.set(json, SLOT_HEADER_BYTES);
    view.setBigUint64(20, checksumOf(this.#xxh64, slot, json.length));
    await this.#device.write((seq % 2) * SLOT_BYTES, slot);
    await this.#device.flush();
    this.#seq = seq;
    this.#record = record;
  }
}

interface Decoded {
  readonly seq: number;
  readonly record: StateRecord;
}

function checksumOf(xxh64: Xxh64, slot: Uint8Array, jsonBytes: number): bigint {
  const h = xxh64.create();
  h.update(slot.subarray(0, 20));
  h.update(slot.subarray(SLOT_HEADER_BYTES, SLOT_HEADER_BYTES + jsonBytes));
  return h.digest();
}

function decodeSlot(xxh64: Xxh64, slot: Uint8Array): Decoded | 'invalid' | undefined {
  const view = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
  if (view.getUint32(0) !== MAGIC) return slot.every((b) => b === 0) ? undefined : 'invalid';
  const format = view.getUint32(4);
  if (format !== STATE_FORMAT) throw new DrkitError('FORMAT_VERSION', `Metro state format ${format} is not ${STATE_FORMAT}`);
  const jsonBytes = view.getUint32(16);
  if (jsonBytes > SLOT_BYTES - SLOT_HEADER_BYTES || view.getBigUint64(20) !== checksumOf(xxh64, slot, jsonBytes)) return 'invalid';
  const f = parseJsonPayload(slot.subarray(SLOT_HEADER_BYTES, SLOT_HEADER_BYTES + jsonBytes), 'Metro state');
  const forced = f.boolean('forced') ? f.integer('forcedAtMs', 0, Number.MAX_SAFE_INTEGER) : undefined;
  return {
    seq: Number(view.getBigUint64(8)),
    record: { pairId: f.id('pairId'), siteId: f.id('siteId'), role: f.oneOf('role', ['active', 'standby'] as const), term: f.integer('term', 0, Number.MAX_SAFE_INTEGER), forcedAtMs: forced },
  };
}
