// A two-site world for Protector tests: site A (the protected one) on crash-prone
// devices, so a "crash" is real — unflushed writes are lost, every later call of the
// dead generation rejects with CRASHED — and site B (the remote) in memory, both on a
// SimulatedNetwork over one VirtualClock. `crash()` kills generation N of A (stores,
// network host, engine) without stopping anything; `reopen()` opens generation N+1 on
// what survived, exactly as a restarted process would.
import { DeviceExtentStore, LogMetaStore, MemoryBlockDevice, MemoryExtentStore, MemoryMetaStore, VirtualClock, type BlockDevice } from '../../src/adapters/index.js';
import { SnapshotTree, type SnapshotInfo } from '../../src/snapshot/index.js';
import { ORIGIN_SITE_KEY, ORIGIN_SNAPSHOT_KEY, ORIGIN_VOLUME_KEY, Site, type RemoteSite } from '../../src/replication/index.js';
import { DrkitError } from '../../src/core/index.js';
import { FaultyBlockDevice, SimulatedNetwork } from '../../src/testing/index.js';
import { Protector, type ProtectorEvent, type ProtectorOptions } from '../../src/policy/index.js';

const PSK = new Uint8Array(32).fill(7);

export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

export interface Generation {
  readonly n: number;
  readonly host: string;
  readonly tree: SnapshotTree;
  readonly site: Site;
  readonly protector: Protector;
  readonly remote: RemoteSite;
  readonly devices: FaultyBlockDevice[];
}

export class World {
  readonly clock: VirtualClock;
  readonly net: SimulatedNetwork;
  readonly events: ProtectorEvent[] = [];
  b!: { tree: SnapshotTree; site: Site };
  gen!: Generation;
  partitioned = false;
  #inner!: { meta: BlockDevice; data: BlockDevice };
  readonly #extra: Partial<ProtectorOptions>;

  constructor(readonly seed: number, startMs: number, extra: Partial<ProtectorOptions> = {}) {
    this.clock = new VirtualClock(startMs);
    this.net = new SimulatedNetwork({ clock: this.clock, seed, defaults: { latencyMs: 2 }, connectTimeoutMs: 2_000 });
    this.#extra = extra;
  }

  static async create(seed: number, startMs: number, extra: Partial<ProtectorOptions> = {}): Promise<World> {
    const w = new World(seed, startMs, extra);
    const meta = await MemoryMetaStore.open();
    const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open(), clock: w.clock });
    const site = await Site.open({ siteId: 'B', tree, meta, clock: w.clock, peerKeys: () => PSK, idleTimeoutMs: 30_000 });
    await site.listen(w.net.transport('B'), 'B:7000');
    w.b = { tree, site };
    w.#inner = { meta: await MemoryBlockDevice.create({ byteLength: 1 << 20 }), data: await MemoryBlockDevice.create({ byteLength: 1 << 20 }) };
    await w.#open(1);
    return w;
  }

  async #open(n: number): Promise<void> {
    const metaDev = new FaultyBlockDevice(this.#inner.meta, { seed: this.seed * 1000 + n, ownsInner: false });
    const dataDev = new FaultyBlockDevice(this.#inner.data, { seed: this.seed * 1000 + n + 500, ownsInner: false });
    const meta = await LogMetaStore.open({ device: metaDev });
    const extents = await DeviceExtentStore.open({ device: dataDev, meta });
    const tree = await SnapshotTree.open({ meta, extents, clock: this.clock });
    const site = await Site.open({ siteId: 'A', tree, meta, clock: this.clock, peerKeys: () => PSK, idleTimeoutMs: 30_000 });
    const host = `A${n}`;
    if (this.partitioned) this.net.partition([host], ['B']);
    const remote: RemoteSite = { siteId: 'B', address: 'B:7000', transport: this.net.transport(host), psk: PSK, connectTimeoutMs: 2_000 };
    // Events of a dead generation are a zombie's last words: not part of the record.
    const onEvent = (e: ProtectorEvent) => {
      if (this.gen?.n === n) this.events.push(e);
    };
    const { transport, psk, connectTimeoutMs } = remote;
    const connectionFor = (s: { id: string }) => {
      if (s.id !== 'B') throw new DrkitError('INVALID_ARGUMENT', `no credentials for ${s.id}`, { data: { siteId: s.id } });
      return { transport, psk: psk!, connectTimeoutMs: connectTimeoutMs! };
    };
    const protector = await Protector.open({ site, clock: this.clock, meta, connectionFor, onEvent, ...this.#extra });
    this.gen = { n, host, tree, site, protector, remote, devices: [metaDev, dataDev] };
  }

  /** Kills generation N mid-whatever: its devices lose unflushed writes and refuse every later call; its host drops off the network. */
  async crash(): Promise<void> {
    const g = this.gen;
    this.net.crashHost(g.host);
    for (const d of g.devices) await d.crash();
  }

  /** Opens generation N+1 on what survived and starts its engine. */
  async reopen(): Promise<void> {
    await this.#open(this.gen.n + 1);
    this.gen.protector.start();
  }

  partition(): void {
    this.partitioned = true;
    this.net.partition([this.gen.host], ['B']);
  }

  heal(): void {
    this.partitioned = false;
    this.net.heal();
  }

  /** Lets the engine finish what it started (transfers over the simulated network, retries, retention). */
  async settle(): Promise<void> {
    // Stopping the advancer may fire an engine timer inside its last step: go again until truly idle.
    do {
      await this.clock.runUntil(this.clock.now()); // timers due now (a fresh engine's first pass)
      const advancing = this.net.autoAdvance({ idleStepMs: 1_000 });
      try {
        await this.gen.protector.whenIdle();
      } finally {
        await advancing.stop();
      }
    } while (!this.gen.protector.idle || (this.gen.protector.nextWakeMs() ?? Infinity) <= this.clock.now());
  }

  /** Advances to `targetMs` (firing the engine's timers) and lets the work they start finish. */
  async runTo(targetMs: number): Promise<void> {
    if (targetMs > this.clock.now()) await this.clock.runUntil(targetMs);
    await this.settle();
  }

  /** B's replicas of A's snapshots (origin snapshot id -> replica), and per origin volume the origin id of the newest one. */
  remoteView(): { replicas: Map<string, SnapshotInfo>; latestPerVolume: Map<string, string> } {
    const replicas = new Map<string, SnapshotInfo>();
    const best = new Map<string, SnapshotInfo>();
    for (const s of this.b.site.listSnapshots()) {
      if (s.userMetadata[ORIGIN_SITE_KEY] !== 'A') continue;
      replicas.set(s.userMetadata[ORIGIN_SNAPSHOT_KEY]!, s);
      const v = s.userMetadata[ORIGIN_VOLUME_KEY]!;
      const cur = best.get(v);
      if (cur === undefined || s.createdMs > cur.createdMs) best.set(v, s);
    }
    return { replicas, latestPerVolume: new Map([...best].map(([v, s]) => [v, s.userMetadata[ORIGIN_SNAPSHOT_KEY]!])) };
  }
}
