// The policy RemoteSite's options, honoured by the Protector: maxBytesPerSecond bounds the
// wire bytes of all its transfers to that site together (measured per virtual second on a
// SimulatedNetwork whose own link is unlimited), proxyAddress sends every connection to
// the relay address, and one id names one site.
import { describe, expect, it } from 'vitest';
import { MemoryExtentStore, MemoryMetaStore, VirtualClock, type Connection, type IoOptions, type Transport } from '../../src/adapters/index.js';
import { Protector, type ProtectionDomainSpec, type ProtectorEvent, type RemoteSiteSpec } from '../../src/policy/index.js';
import { Site, startRelay } from '../../src/replication/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { SeededPrng, SimulatedNetwork } from '../../src/testing/index.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const PSK = new Uint8Array(32).fill(9);
const START = Date.UTC(2024, 5, 1);
const RATE_BYTES_PER_SEC = 512 * KiB;
/** Frames other than extents (have-queries, block maps, commits) per virtual second, beyond the cap. */
const CONTROL_SLACK_BYTES = 64 * KiB;

/** Records when each byte A sends leaves, and which address each connection was opened to. */
class WireLog implements Transport {
  readonly writes: { atMs: number; byteLength: number }[] = [];
  readonly addresses: string[] = [];
  constructor(readonly inner: Transport, readonly clock: VirtualClock) {}
  async connect(address: string, options?: IoOptions & { timeoutMs?: number }): Promise<Connection> {
    this.addresses.push(address);
    const c = await this.inner.connect(address, options);
    return {
      peer: c.peer,
      write: (bytes: Uint8Array, o?: IoOptions) => {
        this.writes.push({ atMs: this.clock.now(), byteLength: bytes.byteLength });
        return c.write(bytes, o);
      },
      read: () => c.read(),
      close: () => c.close(),
      destroy: (reason?: Error) => c.destroy(reason),
    };
  }
  listen: Transport['listen'] = (address, options) => this.inner.listen(address, options);
}

async function world(siteB: RemoteSiteSpec) {
  const clock = new VirtualClock(START);
  const net = new SimulatedNetwork({ clock, seed: 14, defaults: { latencyMs: 1 } });
  const open = async (siteId: string) => {
    const meta = await MemoryMetaStore.open();
    const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open(), clock });
    return { tree, site: await Site.open({ siteId, tree, meta, clock, peerKeys: () => PSK }), meta };
  };
  const a = await open('A');
  const b = await open('B');
  await b.site.listen(net.transport('B'), 'B:7000');
  const wire = new WireLog(net.transport('A'), clock);
  const events: ProtectorEvent[] = [];
  const protector = await Protector.open({ site: a.site, clock, meta: a.meta, connectionFor: () => ({ transport: wire, psk: PSK }), onEvent: (e) => events.push(e) });
  const prng = new SeededPrng(14);
  const domain = async (id: string, byteLength: number): Promise<ProtectionDomainSpec> => {
    const vol = await a.tree.createVolume({ name: id, byteLength });
    await vol.write(0, prng.fill(new Uint8Array(byteLength))); // incompressible: extents cross the wire at full size
    return {
      id,
      protects: { kind: 'entities', entities: [{ kind: 'volume', id: vol.id }] },
      remoteSites: [siteB],
      schedules: [{ id: 'daily', recurrence: { kind: 'daily', at: '03:00' }, remoteSiteIds: ['B'], retention: { local: { keepLast: 2 } } }],
    };
  };
  /** Snapshots and replicates every domain now, and runs virtual time until the engine is idle. */
  const replicateAll = async (ids: readonly string[]) => {
    const advancing = net.autoAdvance({ idleStepMs: 50 });
    try {
      const startMs = clock.now();
      for (const id of ids) await protector.snapshotNow(id, { replicate: true });
      await protector.whenIdle();
      return { startMs, endMs: clock.now() };
    } finally {
      await advancing.stop();
    }
  };
  return { clock, net, a, b, wire, events, protector, domain, replicateAll };
}

/** The most bytes sent in any window of `windowMs` starting at a write. */
function peakBytes(writes: readonly { atMs: number; byteLength: number }[], windowMs: number): number {
  let peak = 0;
  for (let i = 0, j = 0, sum = 0; i < writes.length; i++) {
    sum += writes[i]!.byteLength;
    while (writes[i]!.atMs - writes[j]!.atMs >= windowMs) sum -= writes[j++]!.byteLength;
    peak = Math.max(peak, sum);
  }
  return peak;
}

const siteB = (options: RemoteSiteSpec['options'] = {}): RemoteSiteSpec => ({ id: 'B', address: 'B:7000', credentialsRef: 'test:psk', options });

describe('Protector and the RemoteSite options', () => {
  it('keeps the wire bytes of all transfers to a site within its maxBytesPerSecond, together', async () => {
    const w = await world(siteB({ maxBytesPerSecond: RATE_BYTES_PER_SEC }));
    await w.protector.addDomain(await w.domain('one', 2 * MiB));
    await w.protector.addDomain(await w.domain('two', 2 * MiB));
    const { startMs, endMs } = await w.replicateAll(['one', 'two']);
    expect(w.events.filter((e) => e.kind === 'replicated').map((e) => e.domainId).sort()).toEqual(['one', 'two']);
    const total = w.wire.writes.reduce((n, x) => n + x.byteLength, 0);
    expect(total).toBeGreaterThan(4 * MiB);
    // A token bucket lets one second of burst through, then the rate, in calls of an eighth of it:
    // at most 2 1/8 x the cap in any second...
    expect(peakBytes(w.wire.writes, 1_000)).toBeLessThanOrEqual(2.125 * RATE_BYTES_PER_SEC + CONTROL_SLACK_BYTES);
    // ...and over the whole run, the cap plus that one burst.
    const seconds = (endMs - startMs) / 1_000;
    expect(total).toBeLessThanOrEqual(RATE_BYTES_PER_SEC * (seconds + 1) + CONTROL_SLACK_BYTES * Math.ceil(seconds));
    expect(seconds).toBeGreaterThanOrEqual((4 * MiB - RATE_BYTES_PER_SEC) / RATE_BYTES_PER_SEC);
    // B holds both replicas.
    expect(w.b.site.listSnapshots()).toHaveLength(2);
  });

  it('without a cap the same transfers take well under a virtual second (the bound above is the cap\'s doing)', async () => {
    const w = await world(siteB());
    await w.protector.addDomain(await w.domain('one', 2 * MiB));
    await w.protector.addDomain(await w.domain('two', 2 * MiB));
    const { startMs, endMs } = await w.replicateAll(['one', 'two']);
    expect(w.b.site.listSnapshots()).toHaveLength(2);
    expect(endMs - startMs).toBeLessThan(1_000);
  });

  it('connects to proxyAddress, not address, when the site has a proxy', async () => {
    const w = await world(siteB({ proxyAddress: 'relay:7100' }));
    // The relay: forwards relay:7100 to B:7000 byte for byte (src/replication/relay.ts runs it over TCP).
    const relay = await startRelay({ listen: 'relay:7100', to: 'B:7000', transport: w.net.transport('relay') });
    try {
      await w.protector.addDomain(await w.domain('one', 256 * KiB));
      await w.replicateAll(['one']);
      expect(w.wire.addresses.length).toBeGreaterThan(0);
      expect(new Set(w.wire.addresses)).toEqual(new Set(['relay:7100']));
      expect(w.b.site.listSnapshots()).toHaveLength(1);
      expect(relay.stats().connections).toBeGreaterThan(0);
    } finally {
      await relay.close();
    }
  });
});
