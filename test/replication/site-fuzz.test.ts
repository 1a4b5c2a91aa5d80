// Fuzzes a live Site (the real receiver, not a test double): authenticated connections
// send random valid-looking messages (random ids, geometry, fingerprints, extents) and
// raw garbage frames after the handshake. The site must answer with coded errors and
// closed connections, never crash or commit anything unverified, keep serving, and a
// legitimate replication afterwards must succeed. Seeded (DRKIT_FUZZ_SEED).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadXxh64 } from '../../src/core/checksum.js';
import { isDrkitError } from '../../src/core/errors.js';
import { MemoryExtentStore, MemoryMetaStore, MemoryTransport, VirtualClock } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { Site } from '../../src/replication/index.js';
import { clientHandshake } from '../../src/replication/internal/handshake.js';
import { readMessage, writeMessage, type Message } from '../../src/replication/internal/messages.js';
import { FRAME_TYPE } from '../../src/replication/internal/frame-codec.js';
import { SeededPrng } from '../../src/testing/internal/seeded-prng.js';
import { arbMessage } from './protocol-helpers.js';

const SEED = Number(process.env.DRKIT_FUZZ_SEED ?? 77);
const CASES = 2_000;
const PSK = new Uint8Array(32).fill(8);
const CODED = new Set(['PROTOCOL_ERROR', 'AUTH_FAILED', 'FORMAT_VERSION', 'TIMEOUT', 'CONNECTION_LOST', 'CLOSED', 'INVALID_ARGUMENT', 'NOT_FOUND', 'CORRUPTION', 'EXTENT_NOT_FOUND', 'OUT_OF_RANGE', 'NOT_SUPPORTED', 'ALREADY_EXISTS']);

describe('live Site under fuzzed traffic', () => {
  it(`answers ${CASES} hostile connections with coded errors and keeps serving (seed ${SEED})`, async () => {
    const net = MemoryTransport.create();
    const clock = new VirtualClock(0);
    const meta = await MemoryMetaStore.open();
    const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open() });
    const b = await Site.open({ siteId: 'B', tree, meta, peerKeys: () => PSK });
    const listener = await b.listen(net, 'B:1');
    const xxh = await loadXxh64();
    const prng = new SeededPrng(SEED);
    const pool: Message[] = fc.sample(arbMessage, { seed: SEED, numRuns: 4_000 });
    const seen = new Map<string, number>();
    const heapBefore = process.memoryUsage().heapUsed;
    for (let i = 0; i < CASES; i++) {
      const conn = await net.connect(listener.address);
      const { reader, writer } = await clientHandshake(conn, { siteId: `fuzz${i % 7}`, clock, psk: PSK, expectedPeerSiteId: 'B' });
      const outcome = (async () => {
        const count = 1 + prng.below(4);
        for (let k = 0; k < count; k++) {
          if (prng.below(4) === 0) {
            // A frame of a random type with a random payload (valid framing, garbage inside).
            const types = Object.values(FRAME_TYPE);
            const payload = new Uint8Array(prng.below(300));
            for (let j = 0; j < payload.length; j++) payload[j] = prng.below(256);
            await writer.write(types[prng.below(types.length)]!, [payload]);
          } else {
            await writeMessage(writer, pool[prng.below(pool.length)]!);
          }
        }
        // Drain answers until the server closes, or until it waits for more (then we hang up).
        const QUIET_MS = 50; // the server answered and is waiting: a legitimate state
        for (let k = 0; k < 8; k++) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          const quiet = new Promise<'quiet'>((resolve) => (timer = setTimeout(() => resolve('quiet'), QUIET_MS)));
          const m = await Promise.race([readMessage(reader), quiet]);
          clearTimeout(timer);
          if (m === 'quiet') return 'answered';
          if (m === undefined || m.type === 'ERROR') return m?.type === 'ERROR' ? `ERROR:${m.code}` : 'closed';
        }
        return 'answered';
      })().catch((err: unknown) => (isDrkitError(err) ? `threw:${err.code}` : `FOREIGN:${String(err)}`));
      const result = await outcome;
      await conn.close();
      const key = result.replace(/^(ERROR|threw):/, '');
      if (!['closed', 'answered'].includes(result)) expect(CODED.has(key), `case ${i} (seed ${SEED}): ${result}`).toBe(true);
      seen.set(result, (seen.get(result) ?? 0) + 1);
    }
    void xxh;
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(256 * 1024 * 1024);
    // Nothing unverified was committed, and the site still serves a real replication.
    expect(b.listSnapshots()).toEqual([]);
    const aMeta = await MemoryMetaStore.open();
    const aTree = await SnapshotTree.open({ meta: aMeta, extents: await MemoryExtentStore.open() });
    const a = await Site.open({ siteId: 'A', tree: aTree, meta: aMeta, peerKeys: () => PSK });
    const vol = await aTree.createVolume({ name: 'v', byteLength: 64 * 16 * 1024 });
    await vol.write(0, new Uint8Array(vol.byteLength).map((_, j) => j & 0xff));
    const s = await aTree.snapshot(vol.id, { name: 's' });
    const r = await a.replicate(s.id, { siteId: 'B', address: listener.address, transport: net, psk: PSK });
    expect(b.listSnapshots().map((x) => x.id)).toEqual(r.remoteSnapshotIds);
    await tree.collectGarbage();
    expect((await tree.verify({ readData: true })).problems).toEqual([]);
    await a.close();
    await b.close();
  });
});
