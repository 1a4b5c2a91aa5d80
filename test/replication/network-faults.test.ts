// Seeded fault runs on the SimulatedNetwork: latency, jitter, limited bandwidth, segment
// loss, connection resets at random points and a partition at a random moment. Every
// replication must converge: the target ends with exactly one copy of each snapshot,
// bit-identical to the source, and a clean verifier. A failing run names its seed.
import { describe, expect, it } from 'vitest';
import { equalBytes } from '../../src/index.js';
import { MemoryExtentStore, MemoryMetaStore, VirtualClock } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { Site } from '../../src/replication/index.js';
import { SimulatedNetwork } from '../../src/testing/index.js';
import { snapshotBytes as content } from './site-helpers.js';

const KiB = 1024;
const PSK = new Uint8Array(32).fill(3);
const SEEDS = Number(process.env.DRKIT_FAULT_SEEDS ?? 10);
const FIRST_SEED = Number(process.env.DRKIT_SEED ?? 1);

function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 0x1_0000_0000;
  };
}


async function runSeed(seed: number): Promise<{ resets: number }> {
  const random = rng(seed);
  const clock = new VirtualClock(1_700_000_000_000);
  const net = new SimulatedNetwork({ clock, seed });
  net.setLink('A', 'B', { latencyMs: 5, jitterMs: 3, bandwidthBytesPerSec: 20_000_000, lossProbability: 0.02, resetProbability: 0.04 });
  const sites = await Promise.all(
    ['A', 'B'].map(async (siteId) => {
      const meta = await MemoryMetaStore.open();
      const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open(), clock });
      const site = await Site.open({ siteId, tree, meta, clock, peerKeys: () => PSK, idleTimeoutMs: 5_000 });
      return { site, tree };
    }),
  );
  const [a, b] = sites as [(typeof sites)[0], (typeof sites)[0]];
  const listener = await b.site.listen(net.transport('B'), 'B:7000');
  const remote = { siteId: 'B', address: listener.address, transport: net.transport('A'), psk: PSK, connectTimeoutMs: 2_000 };
  const advancing = net.autoAdvance();
  try {
    const vol = await a.tree.createVolume({ name: 'v', byteLength: 128 * 16 * KiB });
    // A partition at a seeded moment for a seeded time.
    const partitionAtMs = Math.floor(random() * 300);
    clock.setTimer(partitionAtMs, () => {
      net.partition(['A'], ['B']);
      clock.setTimer(500 + Math.floor(random() * 3_000), () => net.heal());
    });
    const replicated: { local: string; remote: string }[] = [];
    for (let round = 0; round < 3; round++) {
      for (let w = 0; w < 20; w++) {
        const block = new Uint8Array(16 * KiB);
        const fill = Math.floor(random() * 256);
        for (let i = 0; i < block.length; i += 64) block[i] = (fill + i) & 0xff;
        await vol.write(Math.floor(random() * 128) * 16 * KiB, block);
      }
      const s = await a.tree.snapshot(vol.id, { name: `r${round}` });
      const r = await a.site.replicate(s.id, remote, { retries: 200, retryDelayMs: 50 });
      replicated.push({ local: s.id, remote: r.remoteSnapshotIds[0]! });
    }
    const held = b.site.listSnapshots();
    expect(held.length, `seed ${seed}: snapshots at B`).toBe(replicated.length);
    for (const r of replicated) {
      expect(equalBytes(await content(b.tree, r.remote), await content(a.tree, r.local)), `seed ${seed}: ${r.local}`).toBe(true);
    }
    expect(b.site.listVolumes(), `seed ${seed}: staging left`).toEqual([]);
    await b.tree.collectGarbage();
    expect((await b.tree.verify({ readData: true })).problems, `seed ${seed}`).toEqual([]);
    return { resets: net.totalStats().connectionsBroken ?? 0 };
  } finally {
    await a.site.close();
    await b.site.close();
    await advancing.stop();
  }
}

describe('replication over a faulty simulated network', () => {
  it(`converges with nothing lost or duplicated (seeds ${FIRST_SEED}..${FIRST_SEED + SEEDS - 1})`, async () => {
    let broken = 0;
    for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS; seed++) broken += (await runSeed(seed)).resets;
    // The property only means something if connections really broke.
    expect(broken).toBeGreaterThan(SEEDS);
  });
});
