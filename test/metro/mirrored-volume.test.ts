// Metro scenarios on the SimulatedNetwork: mirroring (both modes), a cut between the
// sites (exactly one side continues), delta resync after healing (bytes asserted),
// takeover after a site crash, the stale side refused, operator force, planned swap.
import { afterEach, describe, expect, it } from 'vitest';
import { KiB, pattern, startHarness, type Harness, codeOf } from './metro-harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function mirroredPair(options: Parameters<typeof startHarness>[0]): Promise<Harness> {
  h = await startHarness(options);
  const a = await h.open(h.a);
  const b = await h.open(h.b);
  await h.waitFor('a mirrored', () => a.status === 'mirrored');
  expect(b.status).toBe('standby');
  return h;
}

describe('MirroredVolume', () => {
  for (const mode of ['durable', 'received'] as const) {
    it(`mirrors every write to the peer before it resolves (${mode})`, async () => {
      const hh = await mirroredPair({ seed: 1, mode });
      const a = hh.a.volume!;
      const writes = Array.from({ length: 40 }, (_, i) => ({ byteOffset: (i * 37 * KiB) % (1024 * KiB - 8 * KiB), data: pattern(i, 8 * KiB) }));
      await Promise.all(writes.map((w) => a.write(w.byteOffset, w.data)));
      await a.flush();
      // After the barrier the peer's device holds the same bytes (read straight from its device).
      expect(Buffer.compare(await hh.a.device.read(0, a.byteLength), await hh.b.device.read(0, a.byteLength))).toBe(0);
      // The barrier cleared the activity-log bits: nothing left to resync.
      expect(a.dirty.count).toBe(0);
      expect(await codeOf(hh.b.volume!.write(0, pattern(1, 4096)))).toBe('SUSPENDED');
    });
  }

  it('a cut between the sites: the lease holder continues alone, the other stays suspended; healing resyncs only dirty regions', async () => {
    const hh = await mirroredPair({ seed: 2 });
    const a = hh.a.volume!;
    const b = hh.b.volume!;
    await a.write(0, pattern(0, a.byteLength));
    await a.flush();
    hh.net.partition(['a'], ['b']);
    // Writes during the cut: 3 regions of 64 KiB touched.
    await a.write(64 * KiB + 100, pattern(1, 1000));
    await a.write(5 * 64 * KiB, pattern(2, 64 * KiB));
    await a.write(9 * 64 * KiB + 60 * KiB, pattern(3, 4 * KiB));
    expect(a.status).toBe('degraded');
    expect(a.dirty.list()).toEqual([1, 5, 9]);
    // The standby never takes over while the active side holds the lease.
    await hh.clock.sleep(10_000);
    expect(b.role).toBe('standby');
    expect(await codeOf(b.write(0, pattern(9, 512)))).toBe('SUSPENDED');
    const before = hh.net.linkStats('a', 'b').bytesSent;
    hh.net.heal();
    await hh.waitFor('mirrored again', () => a.status === 'mirrored');
    const moved = hh.net.linkStats('a', 'b').bytesSent - before;
    expect(Buffer.compare(await hh.a.device.read(0, a.byteLength), await hh.b.device.read(0, a.byteLength))).toBe(0);
    // 3 dirty regions of 64 KiB: the resync moved them and little else (handshake, frames, pings).
    expect(moved).toBeGreaterThanOrEqual(3 * 64 * KiB);
    expect(moved).toBeLessThan(3 * 64 * KiB * 1.1);
    expect(a.dirty.count).toBe(0);
    const resynced = hh.a.events.find((e) => e.kind === 'resynced' && e.resync!.regionCount === 3);
    expect(resynced?.resync?.dataBytes).toBe(3 * 64 * KiB);
  });

  it('after a crash of the active site the survivor takes over when the lease expires, holding every acknowledged write', async () => {
    const hh = await mirroredPair({ seed: 3, leaseMs: 3000 });
    const a = hh.a.volume!;
    const acked: { byteOffset: number; data: Uint8Array }[] = [];
    for (let i = 0; i < 30; i++) {
      const w = { byteOffset: i * 16 * KiB, data: pattern(100 + i, 16 * KiB) };
      await a.write(w.byteOffset, w.data);
      acked.push(w);
    }
    const crashedAt = hh.clock.now();
    await hh.crash(hh.a);
    const b = hh.b.volume!;
    await hh.waitFor('b active', () => b.status === 'degraded');
    expect(hh.clock.now() - crashedAt).toBeLessThanOrEqual(3000 + 1000);
    expect(b.term).toBeGreaterThan(1);
    for (const w of acked) expect(Buffer.compare(await b.read(w.byteOffset, w.data.length), w.data)).toBe(0);
    await b.write(0, pattern(999, 4 * KiB));
    // The old active comes back: it is refused as stale, demotes, and is resynced from b.
    const a2 = await hh.open(hh.a);
    await hh.waitFor('b mirrored to the old active', () => b.status === 'mirrored');
    expect(a2.role).toBe('standby');
    expect(Buffer.compare(await hh.a.device.read(0, b.byteLength), await hh.b.device.read(0, b.byteLength))).toBe(0);
    // The survivor's write after the takeover is kept: the stale side was never the resync source.
    expect(Buffer.compare(await b.read(0, 4 * KiB), pattern(999, 4 * KiB))).toBe(0);
  });

  it('without peer and witness both sides suspend; an operator force is recorded and makes one side writable', async () => {
    const hh = await mirroredPair({ seed: 4, leaseMs: 2000 });
    const a = hh.a.volume!;
    const b = hh.b.volume!;
    hh.net.partition(['a'], ['b', 'w']);
    hh.net.partition(['b'], ['w']);
    expect(await codeOf(a.write(0, pattern(1, 4096)))).toBe('SUSPENDED');
    await hh.clock.sleep(6000);
    expect(await codeOf(a.write(0, pattern(1, 4096)))).toBe('SUSPENDED');
    expect(await codeOf(b.write(0, pattern(1, 4096)))).toBe('SUSPENDED');
    await b.force();
    expect(b.forcedAtMs).toBe(hh.clock.now());
    await b.write(0, pattern(2, 4096));
    expect(b.dirty.list()).toEqual([0]);
  });

  it('an outdated standby is never granted the lease: after a cut and a crash of the side that continued, it stays suspended', async () => {
    const hh = await mirroredPair({ seed: 5, leaseMs: 2000 });
    const a = hh.a.volume!;
    hh.net.partition(['a'], ['b']);
    await a.write(0, pattern(7, 4096));
    expect(a.status).toBe('degraded');
    await hh.crash(hh.a);
    await hh.clock.sleep(8000);
    expect(hh.b.volume!.role).toBe('standby');
    expect(hh.witness.lease('pair1').outdated).toBe('site-b');
  });

  it('a planned swap hands the active role over with no write loss', async () => {
    const hh = await mirroredPair({ seed: 6 });
    const a = hh.a.volume!;
    const b = hh.b.volume!;
    await a.write(4096, pattern(3, 8192));
    await a.swap();
    expect(a.role).toBe('standby');
    await hh.waitFor('b mirrored', () => b.status === 'mirrored');
    expect(Buffer.compare(await b.read(4096, 8192), pattern(3, 8192))).toBe(0);
    await b.write(0, pattern(4, 4096));
    expect(Buffer.compare(await hh.a.device.read(0, 4096), pattern(4, 4096))).toBe(0);
    expect(await codeOf(a.write(0, pattern(5, 4096)))).toBe('SUSPENDED');
  });
});
