// NearSync between two real Node processes over TCP (issue #11): the target is a site in
// a child process (fixtures/site-process.mjs); this process runs a NearSyncEngine with
// LWS every 200 ms on the system clock over a write-logged tree, writes a two-volume
// consistency group, and asks the child to restore the newest LWS and hash it, then to
// compose a full snapshot. Uses the built package (npm test builds first).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { DeviceExtentStore, MemoryBlockDevice, MemoryMetaStore, SystemClock } from '../../dist/adapters/index.js';
import { TcpTransport } from '../../dist/adapters/node.js';
import { SnapshotTree } from '../../dist/snapshot/index.js';
import { Site } from '../../dist/replication/index.js';
import { NearSyncEngine } from '../../dist/policy/index.js';

const KiB = 1024;
const psk = new Uint8Array(32).fill(42);
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill();
});

describe('NearSync across processes over TCP', () => {
  it('ships LWS to a target process that restores the newest one bit-identical and composes', async () => {
    const child = spawn(process.execPath, [join(__dirname, 'fixtures/site-process.mjs'), 'B', 'tcp'], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(child);
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const next = async () => JSON.parse((await lines.next()).value as string);
    const { address } = await next();
    const meta = await MemoryMetaStore.open();
    const extents = await DeviceExtentStore.open({ device: await MemoryBlockDevice.create({ byteLength: 32 << 20 }), meta });
    const tree = await SnapshotTree.open({ meta, extents, writeLog: await MemoryBlockDevice.create({ byteLength: 16 << 20 }) });
    const site = await Site.open({ siteId: 'A', tree, meta, peerKeys: () => psk });
    const vols = [await tree.createVolume({ name: 'db', byteLength: 1024 * KiB, blockBytes: 16 * KiB }), await tree.createVolume({ name: 'wal', byteLength: 512 * KiB, blockBytes: 16 * KiB })];
    const events: { kind: string; seq?: number }[] = [];
    const engine = await NearSyncEngine.open({ site, remote: { siteId: 'B', address, transport: TcpTransport.create(), psk }, sessionId: 'pd-x', volumeIds: vols.map((v) => v.id), clock: new SystemClock(), lwsIntervalMs: 200, onEvent: (e: { kind: string; seq?: number }) => events.push(e) });
    engine.start();
    let x = 77;
    for (let i = 0; i < 600; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      const v = vols[i % 2]!;
      await v.write((x % (v.byteLength / (4 * KiB))) * 4 * KiB, new Uint8Array(4 * KiB).fill(x & 255));
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 30));
    }
    const digests = Object.fromEntries(await Promise.all(vols.map(async (v) => [v.id, createHash('sha256').update(await v.read(0, v.byteLength)).digest('hex')] as const)));
    const afterWrites = events.length;
    // The first LWS taken after the last write, once shipped, holds exactly these contents.
    let target: number | undefined;
    for (let i = 0; i < 100 && target === undefined; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const taken = events.slice(afterWrites).find((e) => e.kind === 'lws-taken');
      if (taken !== undefined && events.some((e) => e.kind === 'lws-shipped' && e.seq! >= taken.seq!)) target = taken.seq;
    }
    expect(engine.state.phase).toBe('stable');
    await engine.stop();
    expect(target).toBeDefined();
    child.stdin!.write(`digest pd-x ${target}\n`);
    const restored = await next();
    expect(restored.digests).toEqual(digests);
    // LWS every 200 ms over >= 400 ms of writes plus the target: at least two valid (how many more is wall-clock timing).
    expect(restored.validPoints).toBeGreaterThanOrEqual(2);
    child.stdin!.write('compose\n');
    const { composed } = await next();
    expect(composed).toHaveLength(1);
    expect(composed[0].seq).toBeGreaterThanOrEqual(target!);
    for (const v of vols) await v.close();
    await site.close();
    child.stdin!.end();
  }, 60_000);
});
