// LocalSite: one call opens (or creates) a site directory; close() flushes and closes the
// five parts in order. Reopen cycles, foreign directories, create twice, close without
// flush, the write log on by default, and lookup by name.
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LocalSite, MARKER_FILE, copyDevice } from '../../src/local/index.js';
import { MemoryBlockDevice, type BlockDevice, type BlockRead } from '../../src/adapters/index.js';
import { isDrkitError } from '../../src/core/errors.js';
import { SeededPrng } from '../../src/testing/index.js';

const root = fs.mkdtempSync(join(tmpdir(), 'drkit-local-'));
let n = 0;
const nextDir = (): string => join(root, `site-${n++}`);
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const SMALL_LOG = { byteLength: 4 * 1024 * 1024 };
const KiB = 1024;

/** Byte equality without vitest's deep diff (slow on MiB arrays). */
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;


describe('LocalSite', () => {
  it('creates a site with the write log on by default, and reopens it with its log', async () => {
    const dir = nextDir();
    const s = await LocalSite.open({ dir, create: true, siteId: 'alpha' });
    expect(s.marker.writeLogByteLength).toBe(256 * 1024 * 1024);
    expect(fs.existsSync(join(dir, 'writelog.img'))).toBe(true);
    expect(fs.statSync(join(dir, 'writelog.img')).blocks * 512).toBeLessThan(1024 * 1024); // sparse
    const vol = await s.tree.createVolume({ name: 'v', byteLength: 64 * KiB, blockBytes: 4 * KiB });
    await vol.write(100, new Uint8Array(10).fill(7)); // small: goes to the log
    expect(s.tree.writeLogStats()!.pendingBytes).toBeGreaterThan(0);
    await vol.close();
    await s.close();
    await s.close(); // idempotent
    const again = await LocalSite.open({ dir });
    expect(again.siteId).toBe('alpha');
    expect(again.site.siteId).toBe('alpha');
    const v = await again.tree.openVolume(again.tree.findVolume('v').id);
    expect(await v.read(100, 10)).toEqual(new Uint8Array(10).fill(7));
    await v.close();
    await again.close();
  });

  it('close() without flush keeps every acknowledged write, with and without a write log', async () => {
    for (const writeLog of [SMALL_LOG, false] as const) {
      const dir = nextDir();
      const s = await LocalSite.open({ dir, create: true, writeLog });
      const vol = await s.tree.createVolume({ name: 'v', byteLength: 1024 * KiB });
      await vol.write(5000, new Uint8Array(3000).fill(3));
      await vol.write(512 * KiB, new Uint8Array(256 * KiB).fill(4)); // large aligned: bypasses the log
      await vol.close();
      await s.close(); // no flush() call
      const again = await LocalSite.open({ dir });
      const v = await again.tree.openVolume(again.tree.findVolume('v').id);
      expect(await v.read(5000, 3000)).toEqual(new Uint8Array(3000).fill(3));
      expect(await v.read(512 * KiB, 256 * KiB)).toEqual(new Uint8Array(256 * KiB).fill(4));
      await v.close();
      await again.close();
    }
  });

  it('reopen cycles keep every snapshot bit-identical (property, seeded)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.integer({ min: 2, max: 4 }), async (seed, cycles) => {
        const dir = nextDir();
        const rng = new SeededPrng(seed);
        const model = new Uint8Array(256 * KiB);
        const snaps: { id: string; bytes: Uint8Array }[] = [];
        let s = await LocalSite.open({ dir, create: true, writeLog: SMALL_LOG });
        const volumeId = (await s.tree.createVolume({ name: 'v', byteLength: model.byteLength, blockBytes: 4 * KiB })).id;
        for (let c = 0; c < cycles; c++) {
          const vol = await s.tree.openVolume(volumeId);
          for (let w = 0; w < 8; w++) {
            const byteLength = 1 + rng.below(20 * KiB);
            const byteOffset = rng.below(model.byteLength - byteLength);
            const data = new Uint8Array(byteLength).fill(1 + rng.below(255));
            await vol.write(byteOffset, data);
            model.set(data, byteOffset);
          }
          await vol.close();
          const snap = await s.tree.snapshot(volumeId, { name: `c${c}` });
          snaps.push({ id: snap.id, bytes: model.slice() });
          await s.close();
          s = await LocalSite.open({ dir, create: c % 2 === 0 }); // create: true on an existing site opens it
          for (const k of snaps) {
            const r = s.tree.openSnapshot(k.id);
            expect(sameBytes(await r.read(0, model.byteLength), k.bytes)).toBe(true);
            await r.close();
          }
        }
        expect((await s.tree.verify({ readData: true })).problems).toEqual([]);
        await s.close();
      }),
      { numRuns: 3, seed: Number(process.env.FC_SEED ?? 15), verbose: true },
    );
  });

  it('a missing site is NOT_FOUND; a foreign directory is refused and left untouched', async () => {
    const missing = nextDir();
    await expect(LocalSite.open({ dir: missing })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(fs.existsSync(missing)).toBe(false);
    const foreign = nextDir();
    fs.mkdirSync(foreign);
    fs.writeFileSync(join(foreign, 'photo.jpg'), 'not a site');
    await expect(LocalSite.open({ dir: foreign, create: true })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(fs.readdirSync(foreign)).toEqual(['photo.jpg']);
    const empty = nextDir();
    fs.mkdirSync(empty);
    await expect(LocalSite.open({ dir: empty })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const file = join(root, 'plain-file');
    fs.writeFileSync(file, 'x');
    await expect(LocalSite.open({ dir: file, create: true })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('refuses a marker of another program, an unknown layout, a malformed marker, and contradicting options', async () => {
    const dir = nextDir();
    await (await LocalSite.open({ dir, create: true, siteId: 'beta', writeLog: SMALL_LOG })).close();
    const markerPath = join(dir, MARKER_FILE);
    const good = fs.readFileSync(markerPath, 'utf8');
    await expect(LocalSite.open({ dir, siteId: 'gamma' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(LocalSite.open({ dir, writeLog: false })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(LocalSite.open({ dir, storageOnly: true })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    fs.writeFileSync(markerPath, JSON.stringify({ ...JSON.parse(good), format: 'someone-else' }));
    await expect(LocalSite.open({ dir })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    fs.writeFileSync(markerPath, JSON.stringify({ ...JSON.parse(good), layoutVersion: 2 }));
    await expect(LocalSite.open({ dir })).rejects.toMatchObject({ code: 'FORMAT_VERSION' });
    fs.writeFileSync(markerPath, '{"format": "drkit-local-site", ');
    await expect(LocalSite.open({ dir })).rejects.toMatchObject({ code: 'CORRUPTION' });
    fs.writeFileSync(markerPath, JSON.stringify({ ...JSON.parse(good), siteId: 42 }));
    await expect(LocalSite.open({ dir })).rejects.toMatchObject({ code: 'CORRUPTION' });
    fs.writeFileSync(markerPath, good);
    const s = await LocalSite.open({ dir, siteId: 'beta' });
    await s.close();
    const badId = nextDir();
    await expect(LocalSite.open({ dir: badId, create: true, siteId: 'bad id!' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(fs.existsSync(join(badId, MARKER_FILE))).toBe(false); // refused before anything is written
    fs.writeFileSync(markerPath, `${good.trimEnd()}${' '.repeat(100 * 1024)}`);
    await expect(LocalSite.open({ dir })).rejects.toMatchObject({ code: 'CORRUPTION' }); // too large to be a marker
    await expect(LocalSite.open({ dir: nextDir(), create: true, writeLog: { byteLength: 4096 } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('a site open in this process is BUSY for a second open, and free again after close', async () => {
    const dir = nextDir();
    const s = await LocalSite.open({ dir, create: true, writeLog: false });
    await expect(LocalSite.open({ dir })).rejects.toMatchObject({ code: 'BUSY' });
    await s.close();
    await (await LocalSite.open({ dir })).close();
  });

  it('finds volumes and snapshots by name; a shared name is an ambiguity error naming the ids', async () => {
    const s = await LocalSite.open({ dir: nextDir(), create: true, writeLog: false });
    const a = await s.tree.createVolume({ name: 'db', byteLength: 64 * KiB });
    const b = await s.tree.createVolume({ name: 'web', byteLength: 64 * KiB });
    expect(s.tree.findVolume('db').id).toBe(a.id);
    await expect(Promise.resolve().then(() => s.tree.findVolume('nope'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const sa = await s.tree.snapshot(a.id, { name: 'nightly' });
    const sb = await s.tree.snapshot(b.id, { name: 'nightly' });
    const err = (() => {
      try {
        s.tree.findSnapshot('nightly');
        return undefined;
      } catch (e) {
        return e;
      }
    })();
    expect(isDrkitError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect((err as { data: { ids: string[] } }).data.ids).toEqual([sa.id, sb.id]);
    expect(s.tree.findSnapshot('nightly', { volumeId: b.id }).id).toBe(sb.id);
    await s.tree.createVolume({ name: 'db', byteLength: 64 * KiB });
    await expect(Promise.resolve().then(() => s.tree.findVolume('db'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    for (const v of [a, b]) await v.close();
    await s.close();
  });

  it('a storage-only site is recorded as such and refuses volumes at reopen', async () => {
    const dir = nextDir();
    const s = await LocalSite.open({ dir, create: true, storageOnly: true, writeLog: false });
    expect(s.site.storageOnly).toBe(true);
    await (await s.tree.createVolume({ name: 'sneaky', byteLength: 64 * KiB })).close();
    await s.close();
    await expect(LocalSite.open({ dir })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('copyDevice', () => {
  it('copies every byte, skips zero chunks only when told the target is zero, and flushes', async () => {
    const from = await MemoryBlockDevice.create({ byteLength: 5 * 1024 * KiB + 512 });
    await from.write(100, new Uint8Array(1000).fill(1));
    await from.write(4 * 1024 * KiB, new Uint8Array(1024 * KiB + 512).fill(2));
    const to = await MemoryBlockDevice.create({ byteLength: from.byteLength });
    const phases: string[] = [];
    const r = await copyDevice(from, to, { targetIsZero: true, onProgress: (p) => phases.push(`${p.phase}:${p.completedBytes}`) });
    expect(r.copiedBytes).toBe(from.byteLength);
    expect(r.writtenBytes).toBe(1024 * KiB + 1024 * KiB + 512); // chunks 0, 4 and the tail
    expect(sameBytes(await to.read(0, to.byteLength), await from.read(0, from.byteLength))).toBe(true);
    expect(phases.at(-1)).toBe(`flush:${from.byteLength}`);
    const dirty = await MemoryBlockDevice.create({ byteLength: from.byteLength });
    await dirty.write(2 * 1024 * KiB, new Uint8Array(10).fill(9));
    await copyDevice(from, dirty);
    expect(sameBytes(await dirty.read(0, dirty.byteLength), await from.read(0, from.byteLength))).toBe(true);
    const short = await MemoryBlockDevice.create({ byteLength: 4096 });
    await expect(copyDevice(from, short)).rejects.toMatchObject({ code: 'OUT_OF_RANGE' });
    await expect(copyDevice(from, to, { chunkBytes: 1000 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const aborted = new AbortController();
    aborted.abort();
    await expect(copyDevice(from, to, { signal: aborted.signal })).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('reuses its read buffers only after the write of their bytes resolved, whatever order reads and writes finish in (seed 0xc0de)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 24 }), fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 48, maxLength: 48 }), async (chunks, delays) => {
        const chunkBytes = 4 * KiB;
        const from = await MemoryBlockDevice.create({ byteLength: chunks * chunkBytes });
        for (let i = 0; i < chunks; i++) await from.write(i * chunkBytes, new Uint8Array(chunkBytes).fill(i + 1));
        const to = await MemoryBlockDevice.create({ byteLength: from.byteLength });
        let call = 0;
        const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, delays[call++ % delays.length]));
        // Reads finish after seeded delays (out of order); a write checks at its end that
        // nobody overwrote the bytes it was handed while it was in flight.
        const slowFrom = {
          byteLength: from.byteLength,
          readv: async (reads: readonly BlockRead[]) => {
            await tick();
            return from.readv(reads);
          },
        } as unknown as BlockDevice;
        let overwritten = 0;
        const slowTo = {
          byteLength: to.byteLength,
          flush: () => to.flush(),
          write: async (byteOffset: number, data: Uint8Array) => {
            const before = data.slice();
            await tick();
            if (!sameBytes(before, data)) overwritten++;
            return to.write(byteOffset, data);
          },
        } as unknown as BlockDevice;
        await copyDevice(slowFrom, slowTo, { chunkBytes });
        expect(overwritten).toBe(0);
        expect(sameBytes(await to.read(0, to.byteLength), await from.read(0, from.byteLength))).toBe(true);
      }),
      { seed: 0xc0de, numRuns: 40 },
    );
  });
});
