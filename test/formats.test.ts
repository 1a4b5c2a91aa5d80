// On-disk formats carry a version; these committed files were written by format v1
// (test/fixtures/formats-v1/make.mjs) and must keep opening, bit for bit, in every later
// build. A copy is opened so the fixture itself is never modified.
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DeviceExtentStore, MemoryBlockDevice, MemoryMetaStore, copyMetaStore, type MetaOp } from '../src/adapters/index.js';
import { FileMetaStore, LmdbMetaStore, RawFileBlockDevice } from '../src/adapters/node.js';
import { encodeEntry, encodeSuperblock, newStoreId } from '../src/adapters/internal/extent-index-codec.js';
import { fixtureFingerprint } from '../src/testing/internal/extent-fixtures.js';
import { loadXxh64 } from '../src/core/checksum.js';
import { concatBytes, utf8 } from '../src/core/bytes.js';
import { SnapshotTree } from '../src/snapshot/index.js';
import { toHex } from '../src/core/bytes.js';
import { DrkitError, isDrkitError } from '../src/core/errors.js';
import type { MetaStore } from '../src/adapters/index.js';

async function dump(meta: MetaStore): Promise<string[]> {
  const out: string[] = [];
  for await (const [k, v] of meta.iterate()) out.push(`${toHex(k)}=${toHex(v)}`);
  return out;
}

const fixture = resolve(__dirname, 'fixtures/formats-v1');
const dir = mkdtempSync(join(tmpdir(), 'drkit-formats-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('format v1 fixtures', () => {
  it('a v1 extent index is refused with FORMAT_VERSION naming the upgrade, and nothing is changed', async () => {
    const sub = join(dir, 'refused');
    mkdirSync(sub);
    for (const f of ['extents.img', 'metadata.log']) copyFileSync(join(fixture, f), join(sub, f));
    const device = await RawFileBlockDevice.open({ path: join(sub, 'extents.img') });
    const meta = await FileMetaStore.open({ path: join(sub, 'metadata.log') });
    const before = await dump(meta);
    const err = await DeviceExtentStore.open({ device, meta }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isDrkitError(err, 'FORMAT_VERSION')).toBe(true);
    expect((err as DrkitError).data).toMatchObject({ version: 1, supported: 2, upgrade: 'DeviceExtentStore.upgrade' });
    expect(await dump(meta)).toEqual(before);
    await meta.close();
    await device.close();
  });

  it('open and read back exactly what v1 wrote, after DeviceExtentStore.upgrade (run twice: idempotent)', async () => {
    for (const f of ['extents.img', 'metadata.log']) copyFileSync(join(fixture, f), join(dir, f));
    const device = await RawFileBlockDevice.open({ path: join(dir, 'extents.img') });
    const meta = await FileMetaStore.open({ path: join(dir, 'metadata.log') });
    const upgraded = await DeviceExtentStore.upgrade({ device, meta });
    expect(upgraded.fromVersion).toBe(1);
    expect(upgraded.extentCount).toBeGreaterThan(0);
    expect((await DeviceExtentStore.upgrade({ device, meta })).fromVersion).toBe(2);
    const extents = await DeviceExtentStore.open({ device, meta });
    expect((await extents.stats()).extentCount).toBe(upgraded.extentCount);
    const tree = await SnapshotTree.open({ meta, extents });
    const snaps = tree.listSnapshots();
    expect(snaps.map((s) => [s.name, s.createdMs, s.userMetadata.purpose])).toEqual([
      ['first', 1_764_000_000_000, 'fixture'],
      ['second', 1_764_000_000_000, undefined],
    ]);
    expect(tree.listVolumes().map((v) => v.name)).toEqual(['fixture', 'fixture-clone']);
    const first = tree.openSnapshot(snaps[0]!.id);
    expect(new TextDecoder().decode((await first.read(0, 32)))).toBe('drkit format v1 fixture, block 0');
    expect(await first.read(4096 * 5, 4096)).toEqual(new Uint8Array(4096).fill(0xab));
    const second = tree.openSnapshot(snaps[1]!.id);
    const changed = await second.read(4096 * 5 + 100, 10);
    expect(changed).toEqual(new Uint8Array(10).fill(0xcd));
    const clone = await tree.openVolume(tree.listVolumes()[1]!.id);
    expect(await clone.read(0, 16)).toEqual(new Uint8Array(16).fill(0xee));
    expect((await tree.verify({ readData: true })).problems).toEqual([]);
    await first.close();
    await second.close();
    await clone.close();
    await tree.close();
    await extents.close();
    await meta.close();
    await device.close();
  });
});

describe('format v2 fixtures', () => {
  it('open and read back exactly what v2 wrote (LmdbMetaStore + index format 2)', async () => {
    const sub = join(dir, 'v2');
    cpSync(resolve(__dirname, 'fixtures/formats-v2'), sub, { recursive: true });
    const device = await RawFileBlockDevice.open({ path: join(sub, 'extents.img') });
    const meta = await LmdbMetaStore.open({ path: join(sub, 'metadata') });
    const extents = await DeviceExtentStore.open({ device, meta });
    const tree = await SnapshotTree.open({ meta, extents });
    const snaps = tree.listSnapshots();
    expect(snaps.map((s) => [s.name, s.createdMs, s.userMetadata.purpose])).toEqual([
      ['first', 1_764_000_000_000, 'fixture'],
      ['second', 1_764_000_000_000, undefined],
    ]);
    const first = tree.openSnapshot(snaps[0]!.id);
    expect(new TextDecoder().decode(await first.read(0, 32))).toBe('drkit format v2 fixture, block 0');
    expect(await first.read(4096 * 5, 4096)).toEqual(new Uint8Array(4096).fill(0xab));
    const second = tree.openSnapshot(snaps[1]!.id);
    expect(await second.read(4096 * 5 + 100, 10)).toEqual(new Uint8Array(10).fill(0xcd));
    const clone = await tree.openVolume(tree.listVolumes()[1]!.id);
    expect(await clone.read(0, 16)).toEqual(new Uint8Array(16).fill(0xee));
    expect((await tree.verify({ readData: true })).problems).toEqual([]);
    for (const h of [first, second, clone]) await h.close();
    await tree.close();
    await extents.close();
    await meta.close();
    await device.close();
  });

  it('a v1 site moves onto the default stores: copyMetaStore (log -> LMDB), then DeviceExtentStore.upgrade', async () => {
    const sub = join(dir, 'v1-to-lmdb');
    mkdirSync(sub);
    for (const f of ['extents.img', 'metadata.log']) copyFileSync(join(fixture, f), join(sub, f));
    const log = await FileMetaStore.open({ path: join(sub, 'metadata.log') });
    const meta = await LmdbMetaStore.open({ path: join(sub, 'metadata'), create: true });
    const copied = await copyMetaStore(log, meta);
    expect(copied.records).toBe((await log.stats()).keyCount);
    await log.close();
    const device = await RawFileBlockDevice.open({ path: join(sub, 'extents.img') });
    await DeviceExtentStore.upgrade({ device, meta });
    const extents = await DeviceExtentStore.open({ device, meta });
    const tree = await SnapshotTree.open({ meta, extents });
    const first = tree.openSnapshot(tree.listSnapshots()[0]!.id);
    expect(new TextDecoder().decode(await first.read(0, 32))).toBe('drkit format v1 fixture, block 0');
    expect((await tree.verify({ readData: true })).problems).toEqual([]);
    await first.close();
    await tree.close();
    await extents.close();
    await meta.close();
    await device.close();
  });
});

describe('DeviceExtentStore.upgrade', () => {
  /** A format-1 index of `count` 512-byte extents, written as a v1 build did. */
  async function v1Store(count: number) {
    const xxh = await loadXxh64();
    const unit = 512;
    const device = await MemoryBlockDevice.create({ byteLength: 4096 + count * unit });
    const meta = await MemoryMetaStore.open();
    const prefix = utf8('x/');
    const header = new Uint8Array(24);
    header[0] = 1;
    new DataView(header.buffer).setUint32(4, unit, true);
    const storeId = newStoreId();
    header.set(storeId, 8);
    await device.write(0, encodeSuperblock({ allocationUnitBytes: unit, storeId, groupUnits: 0 }, xxh, 4096));
    const ops: MetaOp[] = [{ kind: 'put', key: prefix, value: header }];
    const datas: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const data = new Uint8Array(500).fill(i & 0xff);
      new DataView(data.buffer).setUint32(0, i);
      datas.push(data);
      await device.write(4096 + i * unit, data);
      const value = encodeEntry({ byteOffset: 4096 + i * unit, byteLength: data.byteLength, checksum: xxh.hash(data) });
      value[0] = 1;
      ops.push({ kind: 'put', key: concatBytes([prefix, fixtureFingerprint(i)]), value });
    }
    await meta.batch(ops);
    return { device, meta, datas };
  }

  it('a crash part-way leaves format 1 (open refused), and the next call finishes; every extent reads back and new ones do not overlap', async () => {
    const { device, meta, datas } = await v1Store(9000);
    let batches = 0;
    const failing: MetaStore = {
      ...meta,
      get: (k, o) => meta.get(k, o),
      getMany: (k, o) => meta.getMany(k, o),
      iterate: (r, o) => meta.iterate(r, o),
      flush: (o) => meta.flush(o),
      stats: () => meta.stats(),
      close: () => meta.close(),
      batch: async (ops, o) => {
        if (++batches === 2) throw new DrkitError('IO_ERROR', 'injected: the process died here');
        return meta.batch(ops, o);
      },
    };
    await expect(DeviceExtentStore.upgrade({ device, meta: failing })).rejects.toMatchObject({ code: 'IO_ERROR' });
    await expect(DeviceExtentStore.open({ device, meta })).rejects.toMatchObject({ code: 'FORMAT_VERSION' });
    const done = await DeviceExtentStore.upgrade({ device, meta });
    expect(done).toEqual({ fromVersion: 1, extentCount: 9000 });
    const store = await DeviceExtentStore.open({ device, meta });
    expect((await store.stats()).extentCount).toBe(9000);
    const more = Array.from({ length: 300 }, (_, i) => ({ fingerprint: fixtureFingerprint(100_000 + i), data: new Uint8Array(700).fill(0x77) }));
    await store.put(more);
    await store.flush();
    for (let i = 0; i < datas.length; i += 7) expect(await store.get(fixtureFingerprint(i))).toEqual(datas[i]);
    expect(await store.get(fixtureFingerprint(100_001))).toEqual(more[1]!.data);
    await store.close();
  });

  it('overlapping format-1 entries are CORRUPTION, and nothing is changed', async () => {
    const { device, meta } = await v1Store(10);
    const xxh = await loadXxh64();
    const value = encodeEntry({ byteOffset: 4096 + 3 * 512, byteLength: 500, checksum: xxh.hash(new Uint8Array(500)) });
    value[0] = 1;
    await meta.batch([{ kind: 'put', key: concatBytes([utf8('x/'), fixtureFingerprint(99)]), value }]);
    await expect(DeviceExtentStore.upgrade({ device, meta })).rejects.toMatchObject({ code: 'CORRUPTION' });
    await expect(DeviceExtentStore.open({ device, meta })).rejects.toMatchObject({ code: 'FORMAT_VERSION' });
  });
});
