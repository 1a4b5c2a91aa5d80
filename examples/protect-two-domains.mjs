#!/usr/bin/env node
// drkit example: the Protector engine running two protection domains for a simulated
// week, in about a second of real time.
//   - "erp": an application + database volume in one application-consistent consistency
//     group, snapshotted every hour and replicated to the DR site (RPO 1 hour);
//   - "files": a file-server volume, snapshotted nightly at 01:00 Berlin time and
//     replicated to the DR site (RPO 24 hours);
//   - a run book that fails ERP over to the DR site: database first, application two
//     minutes later — printed as a dry run against what the DR site holds;
//   - the network to the DR site is cut for five hours mid-week: the hourly domain
//     breaches its RPO and recovers once the link heals, the nightly one does not notice.
// Everything runs on a VirtualClock and a SimulatedNetwork: time moves only when the
// script moves it. Usage: npm run example:protect
import { MemoryExtentStore, MemoryMetaStore, VirtualClock } from '../dist/adapters/index.js';
import { SnapshotTree } from '../dist/snapshot/index.js';
import { ORIGIN_SITE_KEY, ORIGIN_VOLUME_KEY, Site } from '../dist/replication/index.js';
import { SimulatedNetwork } from '../dist/testing/index.js';
import { Protector, createRunbook, dryRun } from '../dist/policy/index.js';

const HOUR = 3_600_000;
const START = Date.UTC(2024, 9, 21); // Monday 21 October 2024, 00:00 UTC
const WEEK_END = START + 7 * 24 * HOUR;
const PARTITION = { fromMs: START + 3 * 24 * HOUR + 9 * HOUR, toMs: START + 3 * 24 * HOUR + 14 * HOUR };
const psk = new Uint8Array(32).fill(1);
const iso = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z');
const say = (line) => process.stdout.write(`${line}\n`);

const clock = new VirtualClock(START);
const net = new SimulatedNetwork({ clock, seed: 7, defaults: { latencyMs: 20, bandwidthBytesPerSec: 50_000_000 } });

async function openSite(siteId) {
  const meta = await MemoryMetaStore.open();
  const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open(), clock });
  return { meta, tree, site: await Site.open({ siteId, tree, meta, clock, peerKeys: () => psk }) };
}
const primary = await openSite('primary');
const dr = await openSite('dr');
await dr.site.listen(net.transport('dr'), 'dr:7443');

const vol = async (name) => {
  const v = await primary.tree.createVolume({ name, byteLength: 1024 * 1024 });
  return v;
};
const volumes = { app: await vol('erp-app'), db: await vol('erp-db'), files: await vol('files') };
const ref = (v) => ({ kind: 'volume', id: v.id });
const drSite = { id: 'dr', address: 'dr:7443', credentialsRef: 'vault:drkit/dr' };

const counts = new Map();
const protector = await Protector.open({
  site: primary.site,
  clock,
  meta: primary.meta,
  connectionFor: () => ({ transport: net.transport('primary'), psk }), // drSite.credentialsRef names these
  // The ERP group's hooks: flush and freeze the database around the snapshot commit.
  quiesce: () => ({ preFreeze: async () => undefined, postThaw: async () => undefined }),
  onEvent: (e) => {
    counts.set(e.kind, (counts.get(e.kind) ?? 0) + 1);
    if (e.kind === 'rpo-breached') say(`${iso(e.atMs)}  RPO BREACHED   ${e.domainId} at ${e.siteId}: newest restore point is ${(e.ageMs / 60_000).toFixed(0)} min old (target ${e.targetMs / 60_000} min)`);
    if (e.kind === 'rpo-recovered') say(`${iso(e.atMs)}  RPO recovered  ${e.domainId} at ${e.siteId} after ${(e.breachedForMs / 60_000).toFixed(0)} min`);
  },
});

await protector.addDomain({
  id: 'erp',
  name: 'ERP (gold)',
  protects: { kind: 'entities', entities: [ref(volumes.app), ref(volumes.db)] },
  consistencyGroups: [{ id: 'erp-app-db', entities: [ref(volumes.app), ref(volumes.db)], consistency: 'application' }],
  remoteSites: [drSite],
  schedules: [{
    id: 'hourly', recurrence: { kind: 'interval', every: 1, unit: 'hours' }, remoteSiteIds: ['dr'],
    retention: { local: { keepLast: 24 }, remote: [{ siteId: 'dr', rule: { keepLast: 24, tiers: [{ unit: 'day', count: 7 }] } }] },
  }],
});
await protector.addDomain({
  id: 'files',
  name: 'File server (bronze)',
  protects: { kind: 'entities', entities: [ref(volumes.files)] },
  remoteSites: [drSite],
  schedules: [{
    id: 'nightly', recurrence: { kind: 'daily', at: '01:00' }, timeZone: 'Europe/Berlin', remoteSiteIds: ['dr'],
    retention: { local: { keepLast: 3 }, remote: [{ siteId: 'dr', rule: { tiers: [{ unit: 'day', count: 30 }] } }], timeZone: 'Europe/Berlin' },
  }],
});

/** Runs until the engine has finished what is due, letting the network carry its transfers. */
async function settle() {
  do {
    await clock.runUntil(clock.now());
    const advancing = net.autoAdvance({ idleStepMs: 1_000 });
    await protector.whenIdle();
    await advancing.stop();
  } while (!protector.idle);
}

say(`simulating ${iso(START)} .. ${iso(WEEK_END)}; link to 'dr' down ${iso(PARTITION.fromMs)} .. ${iso(PARTITION.toMs)}`);
protector.start();
let writes = 0;
while (clock.now() < WEEK_END) {
  const wake = Math.min(protector.nextWakeMs() ?? WEEK_END, WEEK_END);
  const edge = [PARTITION.fromMs, PARTITION.toMs].find((t) => t > clock.now() && t <= wake);
  await clock.runUntil(Math.max(clock.now(), edge ?? wake));
  if (edge === PARTITION.fromMs) net.partition(['primary'], ['dr']);
  if (edge === PARTITION.toMs) net.heal();
  await settle();
  // The applications keep writing: a few KiB per volume between passes.
  for (const v of Object.values(volumes)) {
    await v.write((writes++ % 64) * 16384, new Uint8Array(4096).fill(writes & 0xff));
  }
}
await protector.stop();

say('\nevents:');
for (const [kind, n] of [...counts].sort()) say(`  ${kind.padEnd(20)} ${n}`);

say('\nRPO report at the end of the week:');
for (const r of protector.rpoReport()) {
  say(`  ${r.domainId.padEnd(6)} -> ${r.siteId}: age ${(r.ageMs / 60_000).toFixed(0).padStart(5)} min, target ${(r.targetMs / 60_000).toFixed(0).padStart(5)} min, threshold ${(r.thresholdMs / 60_000).toFixed(0).padStart(5)} min, ${r.breached ? 'BREACHED' : 'met'}`);
}

say('\nrestore points: ');
for (const [name, v] of Object.entries(volumes)) {
  const here = primary.tree.listSnapshots({ volumeId: v.id }).length;
  const there = dr.site.listSnapshots().filter((s) => s.userMetadata[ORIGIN_VOLUME_KEY] === v.id).length;
  say(`  ${name.padEnd(6)} ${String(here).padStart(3)} at primary, ${String(there).padStart(3)} at dr`);
}

// The failover run book, dry-run against what the DR site holds.
const runbook = createRunbook({
  id: 'erp-failover',
  defaults: { targetSiteId: 'dr', mode: 'clone', clonePrefix: 'dr-' },
  stages: [
    { name: 'database', entities: [{ entity: ref(volumes.db) }] },
    { name: 'application', delayBeforeMs: 120_000, entities: [{ entity: ref(volumes.app) }] },
    { name: 'file server', entities: [{ entity: ref(volumes.files) }] },
  ],
});
const recoveryPoints = Object.values(volumes).map((v) => ({
  siteId: 'dr',
  entity: ref(v),
  snapshots: dr.site.listSnapshots().filter((s) => s.userMetadata[ORIGIN_SITE_KEY] === 'primary' && s.userMetadata[ORIGIN_VOLUME_KEY] === v.id),
}));
const plan = dryRun(runbook, { recoveryPoints });
say(`\nrun book '${runbook.id}' (dry run, ready: ${plan.ready}, at least ${plan.totalDelayMs / 1000} s):`);
for (const step of plan.steps) say(`  ${step.kind.padEnd(22)} ${step.description}`);

await primary.site.close();
await dr.site.close();
