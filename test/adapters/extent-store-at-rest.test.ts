// Compression at rest in the DeviceExtentStore (issue #13): an extent put with an encoded
// form is kept in that form, with the xxh64 of the stored bytes and of the content; reads
// return verified content, getStored serves the stored form verified and not decoded, and
// a store written before entry version 3 (the formats-v2 fixture) opens and takes
// compressed extents beside its old ones.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { BlockDevice } from '../../src/adapters/block-device.js';
import type { ExtentDecoder } from '../../src/adapters/extent-store.js';
import type { MetaStore } from '../../src/adapters/meta-store.js';
import { DeviceExtentStore } from '../../src/adapters/device-extent-store.js';
import { MemoryBlockDevice } from '../../src/adapters/memory-block-device.js';
import { MemoryMetaStore } from '../../src/adapters/memory-meta-store.js';
import { LmdbMetaStore, RawFileBlockDevice } from '../../src/adapters/node.js';
import { INDEX_TAG, decodeEntry } from '../../src/adapters/internal/extent-index-codec.js';
import { CODEC_RAW, CODEC_ZSTD, ExtentCodec } from '../../src/dedup/index.js';
import { loadXxh64, type Xxh64 } from '../../src/core/checksum.js';
import { bytesToKey, concatBytes, utf8 } from '../../src/core/bytes.js';
import { expectCode } from '../../src/testing/internal/suite-assertions.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { fixtureFingerprint } from '../../src/testing/internal/extent-fixtures.js';

let codec: ExtentCodec;
let xxh: Xxh64;
beforeAll(async () => {
  codec = await ExtentCodec.open({ compression: 'zstd' });
  xxh = await loadXxh64();
});
const dir = mkdtempSync(join(tmpdir(), 'drkit-at-rest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Compressible bytes of extent `id`: a few words repeated with an id-dependent twist. */
function textExtent(id: number, byteLength = 16_384): Uint8Array {
  const words = ['replica', 'extent', 'site', 'volume', 'snapshot', 'restore', `id${id}`];
  const out = new Uint8Array(byteLength);
  let x = id * 2654435761 + 1;
  let p = 0;
  while (p < byteLength) {
    x = (x * 1103515245 + 12345) >>> 0;
    const w = `${words[x % words.length]} `;
    for (let c = 0; c < w.length && p < byteLength; c++) out[p++] = w.charCodeAt(c);
  }
  return out;
}

function compressedPut(id: number, byteLength?: number) {
  const data = textExtent(id, byteLength);
  const encoded = codec.compress(data);
  expect(encoded.codec).toBe(CODEC_ZSTD);
  return { fingerprint: fixtureFingerprint(id), data, stored: { codec: encoded.codec, bytes: encoded.bytes } };
}

async function entryOf(meta: MetaStore, id: number) {
  const value = await meta.get(concatBytes([utf8('x/'), Uint8Array.of(INDEX_TAG.entry), fixtureFingerprint(id)]));
  return decodeEntry(value!);
}

async function flipBit(device: BlockDevice, byteOffset: number): Promise<void> {
  const b = await device.read(byteOffset, 1);
  b[0]! ^= 0x04;
  await device.write(byteOffset, b);
}


async function fresh(decoder: ExtentDecoder | null = codec) {
  const device = await MemoryBlockDevice.create({ byteLength: 1024 * 1024 });
  const meta = await MemoryMetaStore.open();
  const store = await DeviceExtentStore.open({ device, meta, ...(decoder === null ? {} : { decoder }) });
  return { device, meta, store };
}

describe('DeviceExtentStore: compression at rest', () => {
  it('keeps the stored form: less device space, content on get, the form as given on getStored, both checksums in the entry', async () => {
    const { meta, store } = await fresh();
    const puts = [compressedPut(1), compressedPut(2)];
    await store.put(puts);
    await store.flush();
    for (const p of puts) expect(await store.get(p.fingerprint)).toEqual(p.data);
    const stored = await store.getStored(puts.map((p) => p.fingerprint));
    stored.forEach((s, i) => {
      expect(s).toEqual({ codec: CODEC_ZSTD, bytes: puts[i]!.stored.bytes, rawLength: puts[i]!.data.byteLength, checksum: xxh.hash(puts[i]!.data) });
    });
    const e = await entryOf(meta, 1);
    expect(e.byteLength).toBe(puts[0]!.stored.bytes.byteLength);
    expect(e.checksum).toBe(xxh.hash(puts[0]!.stored.bytes));
    expect(e.encoded).toEqual({ codec: CODEC_ZSTD, rawLength: 16_384, contentChecksum: xxh.hash(puts[0]!.data) });
    const stats = await store.stats();
    expect(stats.extentBytes).toBe(2 * 16_384);
    expect(stats.storedBytes).toBeLessThan(4096 + 2 * 16_384);
    const listed = [];
    for await (const info of store.list()) listed.push(info);
    expect(listed.map((i) => i.byteLength)).toEqual([16_384, 16_384]);
    await store.delete([fixtureFingerprint(1)]);
    expect((await store.stats()).extentBytes).toBe(16_384);
    await store.close();
  });

  it('getStored reads into the caller\'s buffer while it lasts, then into buffers of its own; a flipped bit there is still CORRUPTION', async () => {
    const { device, meta, store } = await fresh();
    const puts = [compressedPut(11), compressedPut(12), { fingerprint: fixtureFingerprint(13), data: textExtent(13, 4096) }];
    await store.put(puts);
    await store.flush();
    const fps = puts.map((p) => p.fingerprint);
    const plain = await store.getStored(fps);
    // Room for the first two stored forms only.
    const room = plain[0]!.bytes.byteLength + plain[1]!.bytes.byteLength;
    const into = new Uint8Array(room + 100);
    const got = await store.getStored(fps, { into });
    expect(got).toEqual(plain);
    expect(got[0]!.bytes.buffer).toBe(into.buffer);
    expect(got[1]!.bytes.buffer).toBe(into.buffer);
    expect(got[1]!.bytes.byteOffset).toBe(into.byteOffset + plain[0]!.bytes.byteLength);
    expect(got[2]!.bytes.buffer).not.toBe(into.buffer); // did not fit: a buffer of its own
    await expectCode(store.getStored(fps, { into: 'x' as unknown as Uint8Array }), 'INVALID_ARGUMENT');
    // The stored-form checksum is checked on bytes read into the caller's buffer too.
    const e = await entryOf(meta, 12);
    await flipBit(device, e.byteOffset + 10);
    await expectCode(store.getStored(fps, { into }), 'CORRUPTION');
    await store.close();
  });

  it('stores content as is when the form is not smaller, and raw extents serve codec 0 from getStored', async () => {
    const { meta, store } = await fresh();
    const data = textExtent(3, 64);
    await store.put([{ fingerprint: fixtureFingerprint(3), data, stored: { codec: CODEC_ZSTD, bytes: new Uint8Array(64) } }]);
    await store.flush();
    expect((await entryOf(meta, 3)).encoded).toBeUndefined();
    expect(await store.getStored([fixtureFingerprint(3)])).toEqual([{ codec: CODEC_RAW, bytes: data, rawLength: 64, checksum: xxh.hash(data) }]);
    await expectCode(store.put([{ fingerprint: fixtureFingerprint(4), data, stored: { codec: 0, bytes: data } }]), 'INVALID_ARGUMENT');
    await store.close();
  });

  it('remembers an extent put as incompressible: stored as is, served raw with the flag, verified on read', async () => {
    const { device, meta, store } = await fresh();
    const data = new Uint8Array(8192).map((_, i) => (i * 2654435761) >>> 24);
    await store.put([{ fingerprint: fixtureFingerprint(12), data, incompressible: true }]);
    await store.flush();
    const e = await entryOf(meta, 12);
    expect(e.encoded).toEqual({ codec: CODEC_RAW, rawLength: 8192, contentChecksum: xxh.hash(data) });
    expect(await store.getStored([fixtureFingerprint(12)])).toEqual([{ codec: CODEC_RAW, bytes: data, rawLength: 8192, checksum: xxh.hash(data), incompressible: true }]);
    expect(await store.get(fixtureFingerprint(12))).toEqual(data);
    await flipBit(device, e.byteOffset + 100);
    await expectCode(store.get(fixtureFingerprint(12)), 'CORRUPTION');
    await store.close();
    // Without a decoder the hint is not kept (a plain entry).
    const plain = await fresh(null);
    await plain.store.put([{ fingerprint: fixtureFingerprint(12), data, incompressible: true }]);
    await plain.store.flush();
    expect((await entryOf(plain.meta, 12)).encoded).toBeUndefined();
    await plain.store.close();
  });

  it('a bit flip in the stored form is CORRUPTION from getStored (the stored-form checksum) and from get', async () => {
    const { device, meta, store } = await fresh();
    const p = compressedPut(5);
    await store.put([p, compressedPut(6)]);
    await store.flush();
    const e = await entryOf(meta, 5);
    await flipBit(device, e.byteOffset + Math.floor(e.byteLength / 2));
    const err = await store.getStored([p.fingerprint]).catch((x: unknown) => x);
    expect(err).toMatchObject({ code: 'CORRUPTION', data: { byteOffset: e.byteOffset } });
    await expectCode(store.get(p.fingerprint), 'CORRUPTION');
    expect(await store.get(fixtureFingerprint(6))).toEqual(textExtent(6));
    await store.close();
  });

  it('a stored form that decodes to other content is CORRUPTION on get (the content checksum)', async () => {
    const { store } = await fresh();
    const p = compressedPut(7);
    // A well-formed form of different content: the put trusts its caller, the read does not.
    const other = codec.compress(textExtent(8));
    await store.put([{ ...p, stored: { codec: other.codec, bytes: other.bytes } }]);
    await expectCode(store.get(p.fingerprint), 'CORRUPTION');
    await store.close();
  });

  it('without a decoder, forms are ignored on put, and an encoded extent reads NOT_SUPPORTED (getStored still serves it)', async () => {
    const plain = await fresh(null);
    const p = compressedPut(9);
    await plain.store.put([p]);
    await plain.store.flush();
    expect((await entryOf(plain.meta, 9)).encoded).toBeUndefined();
    await plain.store.close();
    const { device, meta, store } = await fresh();
    await store.put([p]);
    await store.flush();
    await store.close();
    const reopened = await DeviceExtentStore.open({ device, meta });
    await expectCode(reopened.get(p.fingerprint), 'NOT_SUPPORTED');
    expect((await reopened.getStored([p.fingerprint]))[0]!.bytes).toEqual(p.stored.bytes);
    await reopened.close();
  });

  it('matches a Map model under random puts (with and without forms), deletes, flushes and reopens (fixed seed)', async () => {
    const seed = 0x13a7;
    const op = fc.oneof(
      fc.record({ kind: fc.constant('put' as const), id: fc.integer({ min: 0, max: 15 }), compressed: fc.boolean(), byteLength: fc.integer({ min: 1, max: 40_000 }) }),
      fc.record({ kind: fc.constant('delete' as const), id: fc.integer({ min: 0, max: 15 }) }),
      fc.record({ kind: fc.constant('reopen' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 30 }), async (ops) => {
        const device = await MemoryBlockDevice.create({ byteLength: 64 * 1024 });
        const meta = await MemoryMetaStore.open();
        let store = await DeviceExtentStore.open({ device, meta, decoder: codec });
        const model = new Map<string, Uint8Array>();
        for (const o of ops) {
          if (o.kind === 'put') {
            const data = textExtent(o.id, o.byteLength);
            const fp = fixtureFingerprint(o.id * 100_000 + o.byteLength);
            const enc = codec.compress(data);
            await store.put([{ fingerprint: fp, data, ...(o.compressed && enc.codec !== CODEC_RAW ? { stored: { codec: enc.codec, bytes: enc.bytes } } : {}) }]);
            if (!model.has(bytesToKey(fp))) model.set(bytesToKey(fp), data);
          } else if (o.kind === 'delete') {
            const key = [...model.keys()][o.id % Math.max(1, model.size)];
            if (key === undefined) continue;
            const fp = Uint8Array.from(Buffer.from(key, 'latin1'));
            await store.delete([fp]);
            model.delete(key);
          } else {
            await store.flush();
            await store.close();
            store = await DeviceExtentStore.open({ device, meta, decoder: codec });
          }
        }
        let extentBytes = 0;
        for (const [key, data] of model) {
          const fp = Uint8Array.from(Buffer.from(key, 'latin1'));
          expect(await store.get(fp)).toEqual(data);
          extentBytes += data.byteLength;
        }
        expect((await store.stats()).extentBytes).toBe(extentBytes);
        await store.close();
      }),
      { seed, numRuns: 25, verbose: true },
    );
  });
});

describe('format v2 fixture with compression at rest', () => {
  it('a store written before entry version 3 opens with a decoder, reads its old extents, and takes compressed ones', async () => {
    const sub = join(dir, 'v2');
    cpSync(resolve(__dirname, '../fixtures/formats-v2'), sub, { recursive: true });
    const device = await RawFileBlockDevice.open({ path: join(sub, 'extents.img') });
    const meta = await LmdbMetaStore.open({ path: join(sub, 'metadata') });
    let extents = await DeviceExtentStore.open({ device, meta, decoder: codec });
    const p = compressedPut(11);
    await extents.put([p]);
    await extents.flush();
    await extents.close();
    extents = await DeviceExtentStore.open({ device, meta, decoder: codec });
    expect(await extents.get(p.fingerprint)).toEqual(p.data);
    const tree = await SnapshotTree.open({ meta, extents });
    const first = tree.openSnapshot(tree.listSnapshots()[0]!.id);
    expect(new TextDecoder().decode(await first.read(0, 32))).toBe('drkit format v2 fixture, block 0');
    await first.close();
    await tree.close();
    await extents.close();
    await meta.close();
    await device.close();
  });
});
