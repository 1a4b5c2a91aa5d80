/**
 * A Metro pair and its witness on a SimulatedNetwork (hosts 'a', 'b', 'w') over memory
 * devices, for the scenario and property tests. A "crash" of a site is its host crash on
 * the network plus the end of its MirroredVolume object; its devices survive (they are
 * what a restarted process would find on disk: every write the volume awaited is there).
 */
import { MemoryBlockDevice, VirtualClock } from '../../src/adapters/index.js';
import { MirroredVolume, MemoryWitnessStore, Witness, metadataBytesFor, startWitnessServer, type MetroEvent, type MirrorMode } from '../../src/metro/index.js';
import { isDrkitError } from '../../src/core/errors.js';
import { SeededPrng, SimulatedNetwork } from '../../src/testing/index.js';

export const PSK = new Uint8Array(32).fill(7);
export const KiB = 1024;

export interface Side {
  readonly host: 'a' | 'b';
  readonly device: MemoryBlockDevice;
  readonly meta: MemoryBlockDevice;
  volume: MirroredVolume | undefined;
  readonly events: MetroEvent[];
}

export interface Harness {
  readonly clock: VirtualClock;
  readonly net: SimulatedNetwork;
  readonly witness: Witness;
  readonly a: Side;
  readonly b: Side;
  open(side: Side): Promise<MirroredVolume>;
  crash(side: Side): Promise<void>;
  waitFor(what: string, predicate: () => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  readonly seed: number;
  readonly byteLength?: number;
  readonly regionBytes?: number;
  readonly leaseMs?: number;
  readonly mode?: MirrorMode;
}

export async function startHarness(options: HarnessOptions): Promise<Harness> {
  const clock = new VirtualClock(1_000_000);
  const net = new SimulatedNetwork({ clock, seed: options.seed, defaults: { latencyMs: 1 } });
  const auto = net.autoAdvance({ idleStepMs: 10 });
  const byteLength = options.byteLength ?? 1024 * KiB;
  const regionBytes = options.regionBytes ?? 64 * KiB;
  const witness = await Witness.open({ store: new MemoryWitnessStore(), clock, leaseMs: options.leaseMs ?? 3000 });
  const server = await startWitnessServer({ witness, transport: net.transport('w'), address: 'w:9000', psk: PSK, clock });
  const side = async (host: 'a' | 'b'): Promise<Side> => ({
    host,
    device: await MemoryBlockDevice.create({ byteLength }),
    meta: await MemoryBlockDevice.create({ byteLength: Math.ceil(metadataBytesFor(byteLength, regionBytes) / 4096) * 4096 }),
    volume: undefined,
    events: [],
  });
  const a = await side('a');
  const b = await side('b');
  const h: Harness = {
    clock,
    net,
    witness,
    a,
    b,
    async open(s) {
      const other = s.host === 'a' ? 'b' : 'a';
      s.volume = await MirroredVolume.open({
        pairId: 'pair1',
        siteId: `site-${s.host}`,
        peerSiteId: `site-${other}`,
        device: s.device,
        metaDevice: s.meta,
        transport: net.transport(s.host),
        listenAddress: `${s.host}:7000`,
        peerAddress: `${other}:7000`,
        witnessAddress: 'w:9000',
        psk: PSK,
        clock,
        initialRole: s.host === 'a' ? 'active' : 'standby',
        regionBytes,
        peerTimeoutMs: 500,
        pollMs: 100,
        ...(options.mode === undefined ? {} : { mode: options.mode }),
        onEvent: (e) => s.events.push(e),
      });
      return s.volume;
    },
    async crash(s) {
      net.crashHost(s.host);
      await s.volume?.close();
      s.volume = undefined;
      net.restartHost(s.host);
    },
    async waitFor(what, predicate, timeoutMs = 30_000) {
      const until = clock.now() + timeoutMs;
      while (!predicate()) {
        if (clock.now() > until) throw new Error(`timed out waiting for ${what}`);
        await clock.sleep(20);
      }
    },
    async close() {
      await a.volume?.close();
      await b.volume?.close();
      await server.close();
      await auto.stop();
    },
  };
  return h;
}

/** Deterministic bytes for write number `n` (the testing kit's seeded PRNG). */
export function pattern(n: number, byteLength: number): Uint8Array {
  return new SeededPrng(n + 1).fill(new Uint8Array(byteLength));
}

/** The DrkitError code `p` rejects with, or 'ok'. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (isDrkitError(err)) return err.code;
    throw err;
  }
}
