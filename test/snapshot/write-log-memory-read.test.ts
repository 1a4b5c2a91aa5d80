// Reading held write-log records (what NearSync ships): records not yet drained come from
// memory, drained ones from the device. Model-based: whatever mix of writes, markers,
// flushes and drains (including a drain while a read is under way) ran, the records from
// the hold to the last marker are exactly those appended, and a reopened tree (which
// reads them all back from the device) yields the same. fast-check prints the seed and
// the shrunk operations of a failure; rerun with DRKIT_SEED=<seed>.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DeviceExtentStore, MemoryBlockDevice, MemoryMetaStore } from '../../src/adapters/index.js';
import { SnapshotTree, type WriteLogEntry } from '../../src/snapshot/index.js';
import { SeededPrng } from '../../src/testing/internal/seeded-prng.js';
import { blockFingerprintsOf } from '../../src/snapshot/internal/block-fingerprints.js';
import { expectSameBytes } from '../../src/testing/internal/extent-fixtures.js';

const KiB = 1024;
const seed = process.env.DRKIT_SEED === undefined ? 20261202 : Number(process.env.DRKIT_SEED);

type Op =
  | { kind: 'write'; block: number; bytes: number; aligned: boolean }
  | { kind: 'mark' }
  | { kind: 'flush' }
  | { kind: 'drain' }
  | { kind: 'read-while-draining' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('write' as const), block: fc.nat(60), bytes: fc.integer({ min: 1, max: 20 * KiB }), aligned: fc.boolean() }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'mark' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'flush' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'drain' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'read-while-draining' as const }) },
);

/** What a read yields, comparable: flush records left out (they carry nothing). */
function shape(entries: readonly WriteLogEntry[]): unknown[] {
  return entries.filter((e) => e.kind !== 'flush').map((e) => (e.kind === 'write' ? ['w', e.seq, e.volumeId, e.byteOffset, Buffer.from(e.data).toString('hex')] : e.kind === 'marker' ? ['m', e.seq, e.volumeIds.join(',')] : []));
}

async function collect(it: AsyncIterable<WriteLogEntry>, duringFirst?: () => Promise<void>): Promise<WriteLogEntry[]> {
  const out: WriteLogEntry[] = [];
  for await (const e of it) {
    // A copy: a reader may keep a record's bytes after the log drained it.
    out.push(e.kind === 'write' ? { ...e, data: e.data.slice() } : e);
    if (out.length === 1 && duringFirst !== undefined) await duringFirst();
  }
  return out;
}

describe('write log records read from memory and from the device', () => {
  it('yield exactly the records appended since the hold, before and after a reopen', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
        const meta = await MemoryMetaStore.open();
        const extents = await DeviceExtentStore.open({ device: await MemoryBlockDevice.create({ byteLength: 16 << 20 }), meta });
        const logDevice = await MemoryBlockDevice.create({ byteLength: 4 << 20 });
        let tree = await SnapshotTree.open({ meta, extents, writeLog: logDevice });
        const vol = await tree.createVolume({ name: 'v', byteLength: 1024 * KiB, blockBytes: 16 * KiB });
        const rng = new SeededPrng(++run);
        const hold = await tree.markWriteLog([vol.id]);
        await tree.holdWriteLog('h', hold);
        const model: unknown[] = [['m', hold.seq, vol.id]];
        let last = hold;
        for (const op of ops) {
          if (op.kind === 'write') {
            const byteLength = op.aligned ? 16 * KiB * (1 + (op.bytes % 3)) : op.bytes;
            const byteOffset = Math.min(op.block * 16 * KiB + (op.aligned ? 0 : op.bytes % 977), 1024 * KiB - byteLength);
            const data = rng.fill(new Uint8Array(byteLength));
            await vol.write(byteOffset, data);
            model.push(['w', -1, vol.id, byteOffset, Buffer.from(data).toString('hex')]);
          } else if (op.kind === 'mark') {
            last = await tree.markWriteLog([vol.id]);
            model.push(['m', last.seq, vol.id]);
          } else if (op.kind === 'flush') {
            await tree.flush();
          } else if (op.kind === 'drain') {
            await tree.snapshot(vol.id, { name: `s${rng.below(1e9)}` });
          } else {
            await tree.flush();
            const read = await collect(tree.readWriteLog(hold, last.seq), () => tree.snapshot(vol.id, { name: `r${rng.below(1e9)}` }).then(() => undefined));
            expect(strip(shape(read))).toEqual(strip(upTo(model, last.seq)));
          }
        }
        await tree.flush();
        expect(tree.writeLogHolds().get('h')).toEqual(hold); // small enough never to pass the bound
        const live = shape(await collect(tree.readWriteLog(hold, last.seq)));
        expect(strip(live)).toEqual(strip(upTo(model, last.seq)));
        await vol.close();
        await tree.close();
        tree = await SnapshotTree.open({ meta, extents, writeLog: logDevice }); // drains everything at open: all from the device
        expect(tree.writeLogStats()!.pendingBytes).toBe(0);
        expect(shape(await collect(tree.readWriteLog(hold, last.seq)))).toEqual(live);
        await tree.close();
      }),
      { seed, numRuns: 40 },
    );
  }, 120_000);

  it('a drain reuses the fingerprints a reader computed only for blocks the last write covers whole', async () => {
    const meta = await MemoryMetaStore.open();
    const extents = await DeviceExtentStore.open({ device: await MemoryBlockDevice.create({ byteLength: 16 << 20 }), meta });
    const tree = await SnapshotTree.open({ meta, extents, writeLog: await MemoryBlockDevice.create({ byteLength: 4 << 20 }) });
    const bs = 16 * KiB;
    const vol = await tree.createVolume({ name: 'v', byteLength: 1024 * KiB, blockBytes: bs });
    const rng = new SeededPrng(3);
    const [x, y, z] = [rng.fill(new Uint8Array(2 * bs)), rng.fill(new Uint8Array(bs)), rng.fill(new Uint8Array(100))];
    const hold = await tree.markWriteLog([vol.id]);
    await tree.holdWriteLog('h', hold);
    await vol.write(0, x); // blocks 0-1
    await vol.write(0, y); // block 0 again: the last write of block 0
    await vol.write(bs + 7, z); // block 1 partly: its last write covers it only partly
    const at = await tree.markWriteLog([vol.id]);
    await tree.flush();
    // What the shipper does: fingerprint the pending whole-block writes (the same data views the drain sees).
    for await (const e of tree.readWriteLog(hold, at.seq)) if (e.kind === 'write' && e.byteOffset % bs === 0 && e.data.byteLength % bs === 0) blockFingerprintsOf(e.data, bs, tree.fingerprinter);
    await tree.snapshot(vol.id, { name: 'drained' });
    // The same contents again elsewhere: deduplicated against what the drain stored under their fingerprints.
    const expected = x.slice();
    expected.set(y, 0);
    expected.set(z, bs + 7);
    await vol.write(8 * bs, x.subarray(0, bs));
    await vol.write(9 * bs, expected.subarray(bs, 2 * bs));
    await tree.snapshot(vol.id, { name: 'again' });
    expectSameBytes(await vol.read(0, 2 * bs), expected);
    expectSameBytes(await vol.read(8 * bs, bs), x.subarray(0, bs));
    expectSameBytes(await vol.read(9 * bs, bs), expected.subarray(bs, 2 * bs));
    expect((await tree.verify()).ok).toBe(true);
    await vol.close();
    await tree.close();
  });
});

/** The model's records up to (and including) the marker at `seq`. */
function upTo(model: unknown[], seq: number): unknown[] {
  const end = model.findIndex((r) => (r as unknown[])[0] === 'm' && (r as unknown[])[1] === seq);
  return model.slice(0, end + 1);
}

/** Writes compared without their sequence numbers (the model does not predict them). */
function strip(rows: unknown[]): unknown[] {
  return rows.map((r) => ((r as unknown[])[0] === 'w' ? ['w', ...(r as unknown[]).slice(2)] : r));
}
