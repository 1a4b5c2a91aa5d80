// On-disk formats carry a version; these committed files were written by format v1
// (test/fixtures/formats-v1/make.mjs) and must keep opening, bit for bit, in every later
// build. A copy is opened so the fixture itself is never modified.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DeviceExtentStore } from '../src/adapters/index.js';
import { FileMetaStore, RawFileBlockDevice } from '../src/adapters/node.js';
import { SnapshotTree } from '../src/snapshot/index.js';
import { toHex } from '../src/core/bytes.js';
import { isDrkitError, type DrkitError } from '../src/core/errors.js';
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
