// Protector bench: the cost of one scheduling pass over 1,000 protection domains x 3
// schedules (hourly local, daily local, daily replicated to a remote site), on a
// VirtualClock, over the built package (npx tsup first).
// - protector.tick: a pass where nothing is due (one minute after every domain fired):
//   the planning cost alone — finding that no fire, retention window, RPO deadline or
//   retry is due. This is what the engine pays on every wake-up of a busy installation.
// - protector.tick.few-due: a pass where 10 of the 1,000 domains fire (a 5-minute
//   schedule): planning plus 10 snapshots, their retention and state writes; the
//   replications it queues run afterwards and are not in the figure.
// Both are the median of ROUNDS passes; memory stores, so the figure is CPU, not disk.
import { MemoryExtentStore, MemoryMetaStore, MemoryTransport, VirtualClock } from '../../dist/adapters/index.js';
import { SnapshotTree } from '../../dist/snapshot/index.js';
import { Site } from '../../dist/replication/index.js';
import { Protector } from '../../dist/policy/index.js';
import { median, timeMs } from '../util.mjs';

/** Passes measured per figure: the median of 15 steadies JIT and GC noise. */
const ROUNDS = 15;
const DOMAINS = 1_000;
const FEW_DUE = 10;
const psk = new Uint8Array(32).fill(9);

export default [
  {
    name: 'protector.tick',
    async run({ log }) {
      const startMs = Date.UTC(2024, 0, 1);
      const clock = new VirtualClock(startMs);
      const transport = MemoryTransport.create();
      const open = async (siteId) => {
        const meta = await MemoryMetaStore.open();
        const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open(), clock });
        return { meta, tree, site: await Site.open({ siteId, tree, meta, clock, peerKeys: () => psk }) };
      };
      const a = await open('A');
      const b = await open('B');
      const listener = await b.site.listen(transport, 'B:1');
      const protector = await Protector.open({ site: a.site, clock, meta: a.meta, connectionFor: () => ({ transport, psk }) });
      const dr = { id: 'B', address: listener.address, credentialsRef: 'bench' };
      for (let i = 0; i < DOMAINS; i++) {
        const vol = await a.tree.createVolume({ name: `v${i}`, byteLength: 16384 });
        await vol.write(0, new Uint8Array([i & 0xff, i >> 8]));
        await vol.close();
        const schedules = [
          { id: 'hourly', recurrence: { kind: 'interval', every: 1, unit: 'hours' }, retention: { local: { keepLast: 24 } } },
          { id: 'daily', recurrence: { kind: 'daily', at: '02:00' }, timeZone: 'Europe/Berlin', retention: { local: { tiers: [{ unit: 'day', count: 7 }] }, timeZone: 'Europe/Berlin' } },
          { id: 'remote', recurrence: { kind: 'daily', at: '03:00' }, remoteSiteIds: ['B'], retention: { local: { keepLast: 2 }, remote: [{ siteId: 'B', rule: { keepLast: 30 } }] } },
        ];
        if (i < FEW_DUE) schedules[0] = { id: 'hourly', recurrence: { kind: 'interval', every: 5, unit: 'minutes' }, retention: { local: { keepLast: 24 } } };
        await protector.addDomain({ id: `pd-${i}`, protects: { kind: 'entities', entities: [{ kind: 'volume', id: vol.id }] }, remoteSites: [dr], schedules });
      }
      // Warm-up: every domain fires once and replicates (MemoryTransport needs no clock).
      await protector.tick();
      await protector.whenIdle();
      const fired = a.tree.listSnapshots().length;
      const idle = [];
      for (let r = 0; r < ROUNDS; r++) {
        await clock.advance(1_000); // stays within the first minute: nothing due
        idle.push(await timeMs(() => protector.tick()));
      }
      const few = [];
      for (let r = 0; r < ROUNDS; r++) {
        await clock.runUntil(startMs + (r + 1) * 5 * 60_000); // the 5-minute schedules of FEW_DUE domains fall due
        few.push(await timeMs(() => protector.tick()));
        await protector.whenIdle();
      }
      const report = protector.rpoReport();
      log(`protector.tick: warm-up took ${fired} snapshots; ${report.filter((x) => x.breached).length} of ${report.length} RPOs breached`);
      await protector.stop();
      await a.site.close();
      await b.site.close();
      return [
        { bench: 'protector.tick', value: median(idle), unit: 'ms', domains: DOMAINS, schedulesPerDomain: 3, due: 0 },
        { bench: 'protector.tick.few-due', value: median(few), unit: 'ms', domains: DOMAINS, schedulesPerDomain: 3, due: FEW_DUE },
      ];
    },
  },
];
