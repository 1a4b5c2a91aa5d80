/**
 * The one-time conversion of a DeviceExtentStore index from format 1 to format 2
 * (see extent-index-codec.ts). Format 1 kept entries at `P <fp>` and no space map; format
 * 2 keeps entries at `P 01 <fp>` beside a persisted space map and counters.
 *
 * Crash safety: entries move in batches, each an atomic put of the new key and delete of
 * the old one, so every entry exists exactly once under one of the two layouts (told
 * apart by key length — all fingerprints of a store have one length — and by the entry's
 * version byte). The space map, the counters and the format-2 header are written last in
 * one durable batch; until then the header still says format 1 and a rerun continues.
 */
import type { BlockDevice } from '../block-device.js';
import type { MetaOp, MetaStore } from '../meta-store.js';
import type { Xxh64 } from '../../core/checksum.js';
import { concatBytes } from '../../core/bytes.js';
import { DrkitError } from '../../core/errors.js';
import {
  EXTENT_FORMAT_V1,
  EXTENT_FORMAT_VERSION,
  INDEX_TAG,
  SUPERBLOCK_BYTES,
  checkSuperblock,
  decodeEntry,
  decodeHeader,
  encodeCounters,
  encodeEntry,
  encodeHeader,
  headerVersion,
} from './extent-index-codec.js';
import { countBits, setBits } from './space-map.js';
import { groupUnitsFor, roundUpTo, spaceMapKeys, wrapIo } from './extent-store-setup.js';

/** Entries moved per batch: bounds one batch (~100 B an op) while keeping commits few. */
const UPGRADE_BATCH_ENTRIES = 4096;

/** What {@link DeviceExtentStore.upgrade} did. */
export interface ExtentStoreUpgradeResult {
  /** Format the index had before the call (1, or 2 when there was nothing to do). */
  readonly fromVersion: number;
  /** Extents the index holds. */
  readonly extentCount: number;
}

/** @internal see DeviceExtentStore.upgrade */
export async function upgradeExtentIndex(device: BlockDevice, meta: MetaStore, prefix: Uint8Array, xxh: Xxh64, maxExtentBytes: number): Promise<ExtentStoreUpgradeResult> {
  const headerValue = await wrapIo(() => meta.get(prefix), 'read extent index header');
  if (headerValue === undefined) throw new DrkitError('NOT_FOUND', 'no extent index under this prefix to upgrade');
  if (headerVersion(headerValue) === EXTENT_FORMAT_VERSION) {
    decodeHeader(headerValue);
    return { fromVersion: EXTENT_FORMAT_VERSION, extentCount: -1 };
  }
  const v1 = decodeHeader(headerValue, true);
  const unit = v1.allocationUnitBytes;
  const reserved = roundUpTo(SUPERBLOCK_BYTES, unit);
  checkSuperblock(await wrapIo(() => device.read(0, reserved), 'read superblock'), v1, xxh);
  const groupUnits = groupUnitsFor(unit, maxExtentBytes);
  const groups = new Map<number, Uint8Array>();
  const mark = (byteOffset: number, byteLength: number): void => {
    const first = byteOffset / unit;
    const units = Math.ceil(byteLength / unit);
    const g = Math.floor(first / groupUnits);
    const at = first - g * groupUnits;
    if (!Number.isInteger(first) || at + units > groupUnits || byteOffset + units * unit > device.byteLength) {
      throw new DrkitError('CORRUPTION', `extent index entry at byte ${byteOffset} is misaligned, spans a space group or lies past the device`, {
        data: { byteOffset, byteLength, allocationUnitBytes: unit, deviceByteLength: device.byteLength },
      });
    }
    let bits = groups.get(g);
    if (bits === undefined) groups.set(g, (bits = new Uint8Array(groupUnits / 8)));
    if (countBits(bits, at, at + units) !== 0) {
      throw new DrkitError('CORRUPTION', `extent index references overlapping device ranges at byte ${byteOffset}`, { data: { byteOffset } });
    }
    setBits(bits, at, units, true);
  };
  mark(0, reserved);

  const entryPrefix = concatBytes([prefix, Uint8Array.of(INDEX_TAG.entry)]);
  let fingerprintBytes: number | undefined;
  let extentCount = 0;
  let extentBytes = 0;
  let ops: MetaOp[] = [];
  for await (const [key, value] of meta.iterate({ prefix })) {
    if (key.byteLength === prefix.byteLength) continue; // the header
    const version = value[0];
    const moved = version === EXTENT_FORMAT_VERSION;
    if (!moved && version !== EXTENT_FORMAT_V1) throw new DrkitError('CORRUPTION', 'extent index entry of unknown version during upgrade', { data: { version } });
    const length = key.byteLength - prefix.byteLength - (moved ? 1 : 0);
    fingerprintBytes ??= length;
    if (length !== fingerprintBytes || length < 1) {
      throw new DrkitError('CORRUPTION', 'extent index mixes fingerprint lengths; it cannot be upgraded in place', { data: { fingerprintBytes, byteLength: length } });
    }
    const entry = decodeEntry(value, moved ? EXTENT_FORMAT_VERSION : EXTENT_FORMAT_V1);
    if (entry.byteLength > 0) mark(entry.byteOffset, entry.byteLength);
    extentCount++;
    extentBytes += entry.byteLength;
    if (moved) continue;
    ops.push({ kind: 'put', key: concatBytes([entryPrefix, key.subarray(prefix.byteLength)]), value: encodeEntry(entry) }, { kind: 'del', key: key.slice() });
    if (ops.length >= UPGRADE_BATCH_ENTRIES * 2) {
      await wrapIo(() => meta.batch(ops), 'move extent index entries');
      ops = [];
    }
  }
  const keys = spaceMapKeys(prefix);
  let usedUnits = 0;
  let lastGroup = 0;
  for (const [g, bits] of groups) {
    const used = countBits(bits, 0, groupUnits);
    usedUnits += used;
    lastGroup = Math.max(lastGroup, g);
    const limit = Math.min(groupUnits, Math.floor(device.byteLength / unit) - g * groupUnits);
    const summary = new Uint8Array(4);
    new DataView(summary.buffer).setUint32(0, Math.max(0, limit - used), true);
    ops.push({ kind: 'put', key: keys.bitmap(g), value: bits }, { kind: 'put', key: keys.summary(g), value: summary });
  }
  const capacityBytes = Math.floor(device.byteLength / unit) * unit;
  ops.push(
    {
      kind: 'put',
      key: concatBytes([prefix, Uint8Array.of(INDEX_TAG.counters)]),
      value: encodeCounters({ extentCount, extentBytes, usedUnits, cursorGroup: lastGroup, capacityBytes }),
    },
    { kind: 'put', key: prefix, value: encodeHeader({ ...v1, groupUnits }) },
  );
  await wrapIo(() => meta.batch(ops, { sync: true }), 'write upgraded extent index');
  return { fromVersion: EXTENT_FORMAT_V1, extentCount };
}
