// The site receiver decodes compressed extents into reused arenas (receiver-state.ts):
// an arena may go back to the pool only once the put that verifies and stores its
// content has settled, or a concurrent batch (another connection) decodes over it.
import { describe, expect, it } from 'vitest';
import { loadXxh64 } from '../../src/core/checksum.js';
import { isDrkitError } from '../../src/core/errors.js';
import { MemoryExtentStore, MemoryMetaStore, VirtualClock } from '../../src/adapters/index.js';
import type { ExtentStore } from '../../src/adapters/extent-store.js';
import { CODEC_RAW, ExtentCodec } from '../../src/dedup/codec.js';
import { sha256Fingerprinter } from '../../src/dedup/fingerprint.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { ReceiverState } from '../../src/replication/receiver-state.js';
import type { WireExtent } from '../../src/replication/replication-port.js';

const KiB = 1024;

/** A store whose puts wait for `open()`: batches overlap as two connections' would. */
function gatedStore(inner: ExtentStore): { store: ExtentStore; open: () => void } {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const store = new Proxy(inner, {
    get(target, key) {
      if (key === 'put') return async (...args: Parameters<ExtentStore['put']>) => (await gate, target.put(...args));
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store, open: release };
}

async function wireExtents(codec: ExtentCodec, seed: number, count: number): Promise<{ wire: WireExtent[]; contents: Uint8Array[] }> {
  const xxh = await loadXxh64();
  const contents: Uint8Array[] = [];
  const wire: WireExtent[] = [];
  for (let i = 0; i < count; i++) {
    // Text-like (compresses) and different in every extent and batch.
    const content = new Uint8Array(16 * KiB).map((_, j) => 97 + ((j * (seed + 3) + i) % 23));
    content.set(new TextEncoder().encode(`batch ${seed} extent ${i}`), 0);
    const encoded = codec.compress(content);
    expect(encoded.codec).not.toBe(CODEC_RAW);
    contents.push(content);
    wire.push({ fingerprint: sha256Fingerprinter.fingerprint(content).slice(), checksum: xxh.hash(content), codec: encoded.codec, rawLength: content.byteLength, data: encoded.bytes.slice() });
  }
  return { wire, contents };
}

async function receiverOver(store: ExtentStore) {
  const meta = await MemoryMetaStore.open();
  const tree = await SnapshotTree.open({ meta, extents: store, clock: new VirtualClock(1_000_000) });
  return { tree, receiver: await ReceiverState.open(tree, meta, 'B') };
}

describe('ReceiverState decode arenas', () => {
  it('keeps each batch its own decode space until its put settles, with batches in flight together', async () => {
    const codec = await ExtentCodec.open();
    const inner = await MemoryExtentStore.open();
    const { store, open } = gatedStore(inner);
    const { receiver } = await receiverOver(store);
    const a = await wireExtents(codec, 1, 40);
    const b = await wireExtents(codec, 2, 40);
    const pa = receiver.extents(a.wire);
    const pb = receiver.extents(b.wire);
    await new Promise((resolve) => setTimeout(resolve, 10));
    open();
    await Promise.all([pa, pb]);
    for (const batch of [a, b]) {
      const got = await inner.getMany(batch.wire.map((e) => e.fingerprint));
      got.forEach((g, i) => expect(Buffer.from(g).equals(Buffer.from(batch.contents[i]!))).toBe(true));
    }
    expect(receiver.keepsNoFrameViews).toBe(true);
  });

  it('lets the caller reuse the frame once a batch is stored, and frees its arenas after a refused batch', async () => {
    const codec = await ExtentCodec.open();
    const inner = await MemoryExtentStore.open();
    const { receiver } = await receiverOver(inner);
    const a = await wireExtents(codec, 3, 20);
    await receiver.extents(a.wire);
    for (const e of a.wire) e.data.fill(0); // the frame's buffer, read into again by the Peer
    const got = await inner.getMany(a.wire.map((e) => e.fingerprint));
    got.forEach((g, i) => expect(Buffer.from(g).equals(Buffer.from(a.contents[i]!))).toBe(true));

    const b = await wireExtents(codec, 4, 20);
    const bad = b.wire.map((e, i) => (i === 7 ? { ...e, fingerprint: a.wire[0]!.fingerprint.map((x) => x ^ 1) } : e));
    const err = await receiver.extents(bad).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isDrkitError(err, 'CORRUPTION'), String(err)).toBe(true);
    expect(await inner.has(b.wire.map((e) => e.fingerprint))).toEqual(b.wire.map(() => false));
    await receiver.extents(b.wire);
    expect(await inner.has(b.wire.map((e) => e.fingerprint))).toEqual(b.wire.map(() => true));
  });
});
