// Write-log records and bit rot (issue #14 item 6, format 2): a flushed record that fails
// its checksum while a later record says it was durable is damage, reported as
// CORRUPTION at open, never a torn tail that silently drops the acknowledged writes after
// it; a damaged last record with nothing after it is a torn tail. Format 1 records still read.
import { describe, expect, it } from 'vitest';
import { MemoryBlockDevice, MemoryExtentStore, MemoryMetaStore } from '../../src/adapters/index.js';
import { loadXxh64 } from '../../src/core/checksum.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { decodeRecord, LOG_KIND, peekRecordBytes } from '../../src/snapshot/internal/log-record.js';

const KiB = 1024;

async function loggedWrites(count: number) {
  const meta = await MemoryMetaStore.open();
  const extents = await MemoryExtentStore.open();
  const log = await MemoryBlockDevice.create({ byteLength: 1 << 20 });
  const tree = await SnapshotTree.open({ meta, extents, writeLog: log });
  const vol = await tree.createVolume({ name: 'v', byteLength: 64 * KiB, blockBytes: 4 * KiB });
  for (let i = 0; i < count; i++) {
    await vol.write(i * 4 * KiB, new Uint8Array(4 * KiB).fill(i + 1));
    await vol.flush(); // a write record, then a flush record
  }
  return { meta, extents, log, vol };
}

/** Flips one data byte of the first record of the log (at byte 0 of a fresh log). */
async function rotFirstRecord(log: MemoryBlockDevice): Promise<void> {
  const at = 48 + 'vol-1'.length + 100;
  const [byte] = await log.read(at, 1);
  await log.write(at, Uint8Array.of(byte! ^ 0x40));
}

describe('write log records and bit rot', () => {
  it('a flushed record that rots, with later records proving it durable, fails the open with CORRUPTION', async () => {
    const { meta, extents, log } = await loggedWrites(3);
    await rotFirstRecord(log);
    await expect(SnapshotTree.open({ meta, extents, writeLog: log })).rejects.toMatchObject({ code: 'CORRUPTION', data: { seq: 1 } });
  });

  it('a damaged last record with nothing durable after it is a torn tail: the earlier flushed writes open', async () => {
    const { meta, extents, log, vol } = await loggedWrites(2);
    await vol.write(10 * 4 * KiB, new Uint8Array(4 * KiB).fill(9)); // never flushed; then torn
    // The unflushed record starts after 2 x (write + flush) records: 2 x (4608 + 512) bytes.
    const at = 2 * (4608 + 512) + 48 + 'vol-1'.length + 7;
    const [byte] = await log.read(at, 1);
    await log.write(at, Uint8Array.of(byte! ^ 1));
    const head = await log.read(2 * (4608 + 512), 4608);
    expect(peekRecordBytes(head, new DataView(head.buffer, head.byteOffset).getBigUint64(12, true), 5, 1 << 20), 'the flip hit the third write record').toBe(4608);
    expect(decodeRecord(await loadXxh64(), head)).toBeUndefined();
    const tree = await SnapshotTree.open({ meta, extents, writeLog: log });
    const again = await tree.openVolume(vol.id);
    expect((await again.read(0, 4 * KiB)).every((x) => x === 1)).toBe(true);
    expect((await again.read(4 * KiB, 4 * KiB)).every((x) => x === 2)).toBe(true);
    expect((await again.read(10 * 4 * KiB, 4 * KiB)).every((x) => x === 0)).toBe(true);
  });

  it('reads format 1 records (40-byte header, no flushedSeq)', async () => {
    const xxh = await loadXxh64();
    const id = new TextEncoder().encode('vol-1');
    const data = new Uint8Array(100).fill(5);
    const raw = 40 + id.length + data.length + 8;
    const out = new Uint8Array(Math.ceil(raw / 512) * 512);
    const view = new DataView(out.buffer);
    view.setUint32(0, 0x4c575244, true);
    out[4] = 1;
    out[5] = LOG_KIND.write;
    view.setUint16(6, id.length, true);
    view.setUint32(8, data.length, true);
    view.setBigUint64(12, 77n, true);
    view.setBigUint64(20, 9n, true);
    view.setBigUint64(28, 4096n, true);
    view.setUint32(36, 3, true);
    out.set(id, 40);
    out.set(data, 40 + id.length);
    view.setBigUint64(40 + id.length + data.length, xxh.hash(out.subarray(0, 40 + id.length + data.length)), true);
    expect(peekRecordBytes(out, 77n, 9, 1 << 20)).toBe(512);
    expect(decodeRecord(xxh, out)).toMatchObject({ kind: LOG_KIND.write, seq: 9, volumeId: 'vol-1', byteOffset: 4096, epoch: 3, flushedSeq: 0, data });
  });
});
