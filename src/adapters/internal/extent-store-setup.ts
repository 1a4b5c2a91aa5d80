/**
 * Setup and I/O helpers of the DeviceExtentStore: creating a new store on a device and
 * MetaStore, validating the allocation unit, alignment arithmetic and error mapping.
 */
import type { BlockDevice } from '../block-device.js';
import type { MetaStore } from '../meta-store.js';
import type { Xxh64 } from '../../core/checksum.js';
import { DrkitError, toDrkitError } from '../../core/errors.js';
import { assertPositiveInteger } from '../../core/validate.js';
import { concatBytes } from '../../core/bytes.js';
import { INDEX_TAG, SUPERBLOCK_BYTES, encodeCounters, encodeHeader, encodeSuperblock, newStoreId, type IndexHeader } from './extent-index-codec.js';
import { MIN_GROUP_UNITS, type SpaceMapKeys } from './space-map.js';

/** Units per space group for a new store: 32,768, or enough that the largest extent fits one group. */
export function groupUnitsFor(unit: number, maxExtentBytes: number): number {
  const need = Math.ceil(maxExtentBytes / unit);
  let units = MIN_GROUP_UNITS;
  while (units < need) units *= 2;
  return units;
}

/** The MetaStore keys of a store's space map (format 2: P 02 <u32be group>, P 03 <u32be group>). */
export function spaceMapKeys(prefix: Uint8Array): SpaceMapKeys {
  const groupKey = (tag: number, group: number): Uint8Array => {
    const out = new Uint8Array(prefix.byteLength + 5);
    out.set(prefix);
    out[prefix.byteLength] = tag;
    new DataView(out.buffer).setUint32(prefix.byteLength + 1, group);
    return out;
  };
  return {
    bitmap: (group) => groupKey(INDEX_TAG.bitmap, group),
    summary: (group) => groupKey(INDEX_TAG.summary, group),
    summaryPrefix: concatBytes([prefix, Uint8Array.of(INDEX_TAG.summary)]),
    groupOfSummary: (key) => new DataView(key.buffer, key.byteOffset, key.byteLength).getUint32(prefix.byteLength + 1),
  };
}

/** Creates a new store: superblock on the device (flushed), then the index header and counters (durable). */
export async function createStore(device: BlockDevice, meta: MetaStore, prefix: Uint8Array, xxh: Xxh64, unit: number, maxExtentBytes: number): Promise<IndexHeader> {
  checkUnit(unit, device);
  let any = false;
  for await (const _ of meta.iterate({ prefix, limit: 1 })) any = true;
  if (any) throw new DrkitError('CORRUPTION', 'extent index has entries but no header');
  const header: IndexHeader = { allocationUnitBytes: unit, storeId: newStoreId(), groupUnits: groupUnitsFor(unit, maxExtentBytes) };
  const reserved = roundUpTo(SUPERBLOCK_BYTES, unit);
  if (device.byteLength < reserved) {
    if (!device.capabilities.resizable) {
      throw new DrkitError('NO_SPACE', `device of ${device.byteLength} bytes cannot hold the ${reserved}-byte superblock`, {
        data: { deviceByteLength: device.byteLength, byteLength: reserved },
      });
    }
    await wrapIo(() => device.resize(reserved), 'grow device');
  }
  await wrapIo(() => device.write(0, encodeSuperblock(header, xxh, reserved)), 'write superblock');
  await wrapIo(() => device.flush(), 'flush device');
  const reservedUnits = reserved / unit;
  const counters = encodeCounters({ extentCount: 0, extentBytes: 0, usedUnits: reservedUnits, cursorGroup: 0, capacityBytes: 0 });
  await wrapIo(
    () =>
      meta.batch(
        [
          { kind: 'put', key: prefix, value: encodeHeader(header) },
          { kind: 'put', key: concatBytes([prefix, Uint8Array.of(INDEX_TAG.counters)]), value: counters },
        ],
        { sync: true },
      ),
    'write extent index header',
  );
  return header;
}

/** @throws INVALID_ARGUMENT unless a power of two, a multiple of the device alignment */
export function checkUnit(unit: number, device: BlockDevice): void {
  assertPositiveInteger(unit, 'allocationUnitBytes');
  const align = device.capabilities.alignmentBytes;
  if ((unit & (unit - 1)) !== 0 || unit > 0x40000000 || unit % align !== 0) {
    throw new DrkitError('INVALID_ARGUMENT', `allocationUnitBytes ${unit} must be a power of two (<= 1 GiB) and a multiple of the device alignment ${align}`, {
      data: { allocationUnitBytes: unit, alignmentBytes: align },
    });
  }
}

export function roundUpTo(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}

export function padTo(data: Uint8Array, align: number): Uint8Array {
  const padded = roundUpTo(data.byteLength, align);
  if (padded === data.byteLength) return data;
  const out = new Uint8Array(padded);
  out.set(data);
  return out;
}

export async function wrapIo<T>(fn: () => Promise<T>, what: string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toDrkitError(err, 'IO_ERROR', what);
  }
}
