// Policy benches: pure planning over the built package (npx tsup first).
import { createRetentionPolicy, planRemoteRetention, planRetention } from '../../dist/policy/index.js';
import { median, timeMs } from '../util.mjs';

/** Rounds per measurement: planning is pure and quick, so the median of 9 steadies JIT noise. */
const ROUNDS = 9;

export default [
  {
    name: 'retention.plan',
    async run({ log }) {
      const snapshotCount = 10_000;
      const intervalMs = 15 * 60_000; // a NearSync-eligible schedule: 10,000 snapshots span ~104 days
      const startMs = Date.UTC(2024, 0, 1);
      const nowMs = startMs + snapshotCount * intervalMs;
      const policy = createRetentionPolicy({
        local: { keepLast: 10, tiers: [{ unit: 'hour', count: 24 }, { unit: 'day', count: 30 }, { unit: 'month', count: 12 }] },
        remote: [
          { siteId: 'dr', rule: { tiers: [{ unit: 'day', count: 30 }, { unit: 'month', count: 12 }] } },
          { siteId: 'vault', rule: { keepLast: 5, tiers: [{ unit: 'week', count: 8 }] } },
        ],
        timeZone: 'Europe/Berlin',
      });
      const snapshots = Array.from({ length: snapshotCount }, (_, i) => ({ id: `snap-${i}`, createdMs: startMs + i * intervalMs, groupId: undefined }));
      // Both sites hold every 4th snapshot; the newest of those is each site's replication base.
      const shared = snapshots.filter((_, i) => i % 4 === 0).map((s) => s.id);
      const context = { sites: [{ siteId: 'dr', sharedSnapshotIds: shared }, { siteId: 'vault', sharedSnapshotIds: shared }], replicatingIds: [snapshots.at(-1).id] };
      let keptCount = 0;
      const samples = [];
      for (let round = 0; round < ROUNDS; round++) {
        samples.push(await timeMs(() => {
          keptCount = planRetention(policy, snapshots, nowMs, context).keep.length;
        }));
      }
      const remoteSamples = [];
      for (let round = 0; round < ROUNDS; round++) {
        remoteSamples.push(await timeMs(() => planRemoteRetention(policy, 'dr', snapshots, nowMs, { sites: [{ siteId: 'source', baseSnapshotId: snapshots.at(-1).id }] })));
      }
      log(`retention.plan: kept ${keptCount} of ${snapshotCount}`);
      return [
        { bench: 'retention.plan', value: median(samples), unit: 'ms', snapshots: snapshotCount, tiers: '24h+30d+12mo', remoteSites: 2, kept: keptCount },
        { bench: 'retention.plan.remote', value: median(remoteSamples), unit: 'ms', snapshots: snapshotCount, tiers: '30d+12mo' },
      ];
    },
  },
];
