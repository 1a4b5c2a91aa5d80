// NearSync benches (issue #11). Source in this process on raw files (LMDB metadata, a
// 1 GiB write log), target in another process over TCP loopback (raw files, LMDB):
// test/replication/fixtures/site-process.mjs. Application load: random 4 KiB writes
// over a 256 MiB volume, paced at 20 MB/s (5,120 writes/s), flushed every 256 writes.
// - nearsync.rpo: seconds from a write's acknowledgement until the LWS holding it is
//   acknowledged durable by the target after the second seed (valid there), p50/p99,
//   LWS every 1 s and every 10 s. Every 16th write is sampled.
// - nearsync.wire: TCP bytes sent by the source / application bytes, in the 1 s run's
//   steady state (seeds excluded), pattern randwrite4k. Two more rows show the whole-block
//   records (no engine: mark and ship by hand, after a replicated seed): pattern
//   rewrite-held, 16 MiB of 1 MiB writes whose content the target holds (the seed has it
//   at another offset): ~fingerprints only; pattern seqwrite-new, 16 MiB of fresh
//   incompressible 1 MiB writes: data plus the fingerprint queries.
// - nearsync.overhead: volume.randwrite4k (32,768 writes, unpaced) and volume.seqwrite
//   (256 MiB in 1 MiB writes) throughput with a NearSync engine shipping every second,
//   divided by the same without, same run. Like with like: every phase runs on a fresh
//   source site (empty log, no backlog of an earlier phase), on and off write the same
//   kind of content (seeded random views of a 64 MiB pool, fresh per run: no block
//   repeats, nothing compresses), and each side reports the CPU seconds of the source and
//   the target during the timed writes and until settled (the log drained by a snapshot,
//   both sides, and with NearSync the last LWS acknowledged). The value is the throughput
//   the application sees; settledCpuRatio (off source CPU / on source + target CPU, to
//   settled) is the cost the write path defers to the drain and the ship.
// - nearsync.compose: seconds for the target to compose a full snapshot from 600 LWS
//   (10 minutes at one a second) of 128 random 4 KiB writes each, taken back to back.
// Scale the load duration with DRKIT_BENCH_NEARSYNC_S (default 30).
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { DeviceExtentStore, SystemClock } from '../../dist/adapters/index.js';
import { LmdbMetaStore, RawFileBlockDevice, TcpTransport } from '../../dist/adapters/node.js';
import { SnapshotTree } from '../../dist/snapshot/index.js';
import { Site } from '../../dist/replication/index.js';
import { NearSyncEngine } from '../../dist/policy/index.js';
import { countingTransport, median, seededBytes } from '../util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const siteProcess = join(here, '../../test/replication/fixtures/site-process.mjs');
const KiB = 1024;
const MiB = 1024 * KiB;
const VOLUME_BYTES = 256 * MiB;
const LOAD_BYTES_PER_SEC = 20 * 1000 * 1000;
const WRITE_BYTES = 4 * KiB;
const FLUSH_EVERY = 256;
const SAMPLE_EVERY = 16;
const LOAD_S = Number(process.env.DRKIT_BENCH_NEARSYNC_S ?? 30);
/** The source's write log: 1 GiB, so the hold bound (half) is ~25 s of the load. */
const LOG_BYTES = 1024 * MiB;
const psk = new Uint8Array(32).fill(42);

async function startTarget(dir) {
  mkdirSync(dir, { recursive: true });
  const child = spawn(process.execPath, [siteProcess, 'B', 'tcp', dir], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => JSON.parse((await lines.next()).value);
  const ready = await next();
  const exited = new Promise((resolve) => child.on('close', resolve));
  return {
    address: ready.address,
    async compose() {
      child.stdin.write('compose\n');
      return (await next()).composed;
    },
    /** CPU seconds the target process has used so far. */
    async cpuS() {
      child.stdin.write('stats\n');
      return (await next()).cpuMs / 1000;
    },
    async stop() {
      child.stdin.end();
      await exited;
    },
  };
}

async function sourceSite(dir, name) {
  const device = await RawFileBlockDevice.open({ path: join(dir, `${name}.data`), create: { byteLength: 64 * MiB } });
  const meta = await LmdbMetaStore.open({ path: join(dir, `${name}.meta`), create: true });
  const extents = await DeviceExtentStore.open({ device, meta });
  const log = await RawFileBlockDevice.open({ path: join(dir, `${name}.log`), create: { byteLength: LOG_BYTES } });
  const dropped = [];
  const tree = await SnapshotTree.open({ meta, extents, writeLog: log, onWriteLogHoldDropped: (h, why) => dropped.push(`${h}:${why}`) });
  const site = await Site.open({ siteId: 'A', tree, meta, peerKeys: () => psk });
  return {
    site,
    tree,
    dropped,
    async close() {
      await site.close();
      await tree.close();
      await extents.close();
      await meta.close();
      await log.close();
      await device.close();
    },
  };
}

function xorshift(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x;
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts an engine to the target and waits until it is stable. */
async function startEngine(src, target, counter, volumeIds, lwsIntervalMs, events, sessionId = `pd-${lwsIntervalMs}`) {
  const tcp = countingTransport(TcpTransport.create());
  const remote = { siteId: 'B', address: target.address, transport: tcp.transport, psk };
  const engine = await NearSyncEngine.open({ site: src.site, remote, sessionId, volumeIds, clock: new SystemClock(), lwsIntervalMs, onEvent: (e) => events.push({ ...e, t: performance.now() }) });
  engine.start();
  for (let i = 0; engine.state.phase !== 'stable'; i++) {
    if (i > 600) throw new Error(`NearSync not stable after 60 s: ${engine.state.phase}`);
    await sleep(100);
  }
  counter.tcp = tcp.counter;
  return engine;
}

/** Paced random 4 KiB writes at 20 MB/s for `seconds`; returns sampled acknowledgement times. */
async function pacedLoad(vol, seconds) {
  const rnd = xorshift(99);
  const data = seededBytes(WRITE_BYTES, 3);
  const perMs = LOAD_BYTES_PER_SEC / WRITE_BYTES / 1000;
  const acks = [];
  const t0 = performance.now();
  let n = 0;
  let behindMs = 0;
  while (performance.now() - t0 < seconds * 1000) {
    const due = Math.floor((performance.now() - t0) * perMs);
    if (n >= due) {
      await sleep(2);
      continue;
    }
    behindMs = Math.max(behindMs, (due - n) / perMs);
    data[0] = n & 0xff;
    data[1] = (n >> 8) & 0xff;
    await vol.write((rnd() % (VOLUME_BYTES / WRITE_BYTES)) * WRITE_BYTES, data);
    n++;
    if (n % SAMPLE_EVERY === 0) acks.push(performance.now());
    if (n % FLUSH_EVERY === 0) await vol.flush();
  }
  await vol.flush();
  const elapsedS = (performance.now() - t0) / 1000;
  return { acks, writes: n, achievedBytesPerSec: (n * WRITE_BYTES) / elapsedS, elapsedS };
}

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** One load run with NearSync at `lwsIntervalMs`: RPO samples and wire bytes. */
async function loadRun(dir, lwsIntervalMs, log) {
  const target = await startTarget(join(dir, `target-${lwsIntervalMs}`));
  const src = await sourceSite(dir, `src-${lwsIntervalMs}`);
  try {
    const vol = await src.tree.createVolume({ name: 'db', byteLength: VOLUME_BYTES, blockBytes: 16 * KiB });
    const events = [];
    const counter = {};
    const engine = await startEngine(src, target, counter, [vol.id], lwsIntervalMs, events);
    const wireBefore = counter.tcp.bytes;
    const load = await pacedLoad(vol, LOAD_S);
    // Let the last LWS holding the load's writes be taken and acknowledged.
    const lastAck = load.acks.at(-1);
    for (let i = 0; i < 600; i++) {
      const taken = events.find((e) => e.kind === 'lws-taken' && e.t >= lastAck);
      if (taken !== undefined && events.some((e) => e.kind === 'lws-shipped' && e.seq >= taken.seq)) break;
      await sleep(100);
    }
    const wireBytes = counter.tcp.bytes - wireBefore;
    await engine.stop();
    const taken = events.filter((e) => e.kind === 'lws-taken');
    const shipped = events.filter((e) => e.kind === 'lws-shipped');
    const rpos = [];
    for (const t of load.acks) {
      const lws = taken.find((e) => e.t >= t);
      const ack = lws && shipped.find((e) => e.seq >= lws.seq);
      if (ack !== undefined) rpos.push((ack.t - t) / 1000);
    }
    rpos.sort((a, b) => a - b);
    if (process.env.NEARSYNC_TRACE) for (const e of events) if (e.kind !== 'lws-valid') log(`  ${(e.t - events[0].t).toFixed(0)} ms ${e.kind} ${e.seq ?? ''} ${e.records ?? ''} ${e.reason ?? ''}`);
    const transitions = events.filter((e) => e.kind === 'transition').map((e) => `${e.from}->${e.to}`);
    log(`nearsync ${lwsIntervalMs} ms: ${load.writes} writes in ${load.elapsedS.toFixed(1)} s (${(load.achievedBytesPerSec / 1e6).toFixed(1)} MB/s), ${rpos.length}/${load.acks.length} samples, transitions ${transitions.join(', ')}, holds dropped ${src.dropped.length}`);
    await vol.close();
    return { rpos, samples: load.acks.length, wireBytes, appBytes: load.writes * WRITE_BYTES, load, transitions, dropped: src.dropped.length, phase: engine.state.phase };
  } finally {
    await src.close();
    await target.stop();
  }
}

const loadFields = (r) => ({ loadMBps: 20, achievedMBps: Number((r.load.achievedBytesPerSec / 1e6).toFixed(2)), loadSeconds: LOAD_S, ioBytes: WRITE_BYTES, volumeBytes: VOLUME_BYTES, target: 'other process, TCP loopback, raw files + LMDB', holdsDropped: r.dropped, finalPhase: r.phase });

/** CPU seconds this (the source) process has used so far. */
function sourceCpuS() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Random 4 KiB writes of seeded random content (views of `pool` at random 8-byte-aligned offsets). */
async function randwrite(vol, writes, pool) {
  const rnd = xorshift(7);
  const t0 = performance.now();
  for (let i = 0; i < writes; i++) {
    const at = (rnd() % ((pool.length - WRITE_BYTES) / 8)) * 8;
    await vol.write((rnd() % (VOLUME_BYTES / WRITE_BYTES)) * WRITE_BYTES, pool.subarray(at, at + WRITE_BYTES));
    if ((i + 1) % FLUSH_EVERY === 0) await vol.flush();
  }
  await vol.flush();
  return writes / ((performance.now() - t0) / 1000);
}

/** Sequential 1 MiB writes of seeded random content (views of `pool` at random 8-byte-aligned offsets: no block repeats). */
async function seqwrite(vol, byteLength, pool) {
  const rnd = xorshift(11);
  const t0 = performance.now();
  for (let off = 0; off < byteLength; off += MiB) {
    const at = (rnd() % ((pool.length - MiB) / 8)) * 8;
    await vol.write(off, pool.subarray(at, at + MiB));
  }
  await vol.flush();
  return byteLength / 1e6 / ((performance.now() - t0) / 1000);
}

/** Waits until the engine has taken an LWS after now and the target acknowledged it (the phase's writes shipped). */
async function settled(events) {
  const t = performance.now();
  for (let i = 0; i < 1200; i++) {
    const taken = events.find((e) => e.kind === 'lws-taken' && e.t >= t);
    if (taken !== undefined && events.some((e) => e.kind === 'lws-shipped' && e.seq >= taken.seq)) return;
    await sleep(50);
  }
  throw new Error('NearSync did not ship the phase within 60 s');
}

/**
 * One measured phase of nearsync.overhead on a fresh source site (empty log, no backlog of
 * another phase), with or without an engine: throughput, and CPU seconds of the source
 * and the target during the timed writes and until the engine shipped them.
 */
async function overheadPhase(dir, target, name, on, write) {
  const src = await sourceSite(dir, name);
  try {
    const vol = await src.tree.createVolume({ name: 'db', byteLength: VOLUME_BYTES, blockBytes: 16 * KiB });
    const events = [];
    // A session id per phase: each phase's source is a fresh log whose sequence numbers restart.
    const engine = on ? await startEngine(src, target, {}, [vol.id], 1000, events, name) : undefined;
    const cpu0 = [sourceCpuS(), await target.cpuS()];
    const throughput = await write(vol);
    const cpu1 = [sourceCpuS(), await target.cpuS()];
    // Settled: with NearSync the last LWS acknowledged (shipped while its records are still
    // pending, as in steady state), then on both sides the drain of what the phase left in
    // the log (a snapshot drains it); the CPU up to there is the phase's whole cost.
    if (engine !== undefined) await settled(events);
    await src.tree.snapshot(vol.id, { name: 'settled' });
    const cpu2 = [sourceCpuS(), await target.cpuS()];
    await engine?.stop();
    await vol.close();
    const shipped = events.filter((e) => e.kind === 'lws-shipped');
    return { shippedRecords: shipped.reduce((n, e) => n + e.records, 0), shippedWireBytes: shipped.reduce((n, e) => n + e.wireBytes, 0), throughput, sourceCpuS: cpu1[0] - cpu0[0], targetCpuS: cpu1[1] - cpu0[1], sourceCpuSettledS: cpu2[0] - cpu0[0], targetCpuSettledS: cpu2[1] - cpu0[1], holdsDropped: src.dropped.length, phase: engine?.state.phase };
  } finally {
    await src.close();
  }
}

/** The wire of whole-block records: content the target holds, then fresh content (see the header). */
async function wholeBlockWire(dir, log) {
  const BYTES = 16 * MiB;
  const target = await startTarget(join(dir, 'target-dedup'));
  const src = await sourceSite(dir, 'dedup');
  try {
    const vol = await src.tree.createVolume({ name: 'db', byteLength: 3 * BYTES, blockBytes: 16 * KiB });
    const chunks = Array.from({ length: BYTES / MiB }, (_, i) => seededBytes(MiB, 100 + i));
    for (const [i, c] of chunks.entries()) await vol.write(i * MiB, c);
    await vol.flush();
    const tcp = countingTransport(TcpTransport.create());
    const remote = { siteId: 'B', address: target.address, transport: tcp.transport, psk };
    const shipper = src.site.nearSync(remote, { sessionId: 'dedup', volumeIds: [vol.id] });
    const at = await shipper.markSeed();
    const [seed] = await src.tree.snapshotGroup([vol.id], { name: 'seed' });
    shipper.setBase(at.seq, new Map([[vol.id, seed.id]]));
    await src.site.replicate([seed.id], remote);
    expectShipped(await shipper.ship(await shipper.mark()));
    const rows = [];
    for (const pattern of ['rewrite-held', 'seqwrite-new']) {
      for (const [i, c] of chunks.entries()) await vol.write((pattern === 'rewrite-held' ? BYTES : 2 * BYTES) + i * MiB, pattern === 'rewrite-held' ? c : seededBytes(MiB, 900 + i));
      const m = await shipper.mark();
      const before = tcp.counter.bytes;
      const dedupBefore = shipper.dedupedBlocks;
      const cpu0 = [sourceCpuS(), await target.cpuS()];
      const t0 = performance.now();
      expectShipped(await shipper.ship(m));
      const s = (performance.now() - t0) / 1000;
      const cpu = [sourceCpuS() - cpu0[0], (await target.cpuS()) - cpu0[1]];
      const wireBytes = tcp.counter.bytes - before;
      const dedupedBlocks = shipper.dedupedBlocks - dedupBefore;
      log(`nearsync.wire ${pattern}: ${BYTES / MiB} MiB in 1 MiB writes shipped as ${wireBytes} wire bytes in ${s.toFixed(2)} s, ${dedupedBlocks} blocks without data; CPU s source ${cpu[0].toFixed(3)} target ${cpu[1].toFixed(3)}`);
      rows.push({ bench: 'nearsync.wire', value: wireBytes / BYTES, unit: 'ratio', pattern, wireBytes, appBytes: BYTES, dedupedBlocks, blocks: BYTES / (16 * KiB), ioBytes: MiB, shipSeconds: Number(s.toFixed(3)), sourceCpuSPerMiB: Number((cpu[0] / (BYTES / MiB)).toFixed(4)), targetCpuSPerMiB: Number((cpu[1] / (BYTES / MiB)).toFixed(4)), data: pattern === 'rewrite-held' ? 'incompressible 1 MiB writes of content the target holds (at another offset)' : 'fresh incompressible 1 MiB writes', target: 'other process, TCP loopback, raw files + LMDB' });
    }
    await shipper.close();
    await vol.close();
    return rows;
  } finally {
    await src.close();
    await target.stop();
  }
}

function expectShipped(r) {
  if (r.kind !== 'shipped') throw new Error(`ship: ${r.kind}`);
}

export default [
  {
    name: 'nearsync.rpo',
    async run({ dir, log }) {
      const out = [];
      for (const lwsIntervalMs of [1000, 10000]) {
        const r = await loadRun(dir, lwsIntervalMs, log);
        out.push({ bench: 'nearsync.rpo', value: quantile(r.rpos, 0.99), unit: 's', p50: quantile(r.rpos, 0.5), lwsIntervalMs, samples: r.rpos.length, sampledWrites: r.samples, max: r.rpos.at(-1), ...loadFields(r) });
      }
      return out;
    },
  },
  {
    name: 'nearsync.wire',
    async run({ dir, log }) {
      const r = await loadRun(dir, 1000, log);
      const rows = [{ bench: 'nearsync.wire', value: r.wireBytes / r.appBytes, unit: 'ratio', pattern: 'randwrite4k', wireBytes: r.wireBytes, appBytes: r.appBytes, lwsIntervalMs: 1000, data: 'random (incompressible) 4 KiB writes', ...loadFields(r) }];
      return [...rows, ...(await wholeBlockWire(dir, log))];
    },
  },
  {
    name: 'nearsync.overhead',
    async run({ dir, log }) {
      const REPEATS = Number(process.env.DRKIT_BENCH_NEARSYNC_REPEATS ?? 3);
      const WRITES = 32768;
      const POOL_BYTES = 64 * MiB;
      const phases = {
        randwrite4k: { unit: 'IOPS', run: (pool) => (vol) => randwrite(vol, WRITES, pool), extra: { writes: WRITES, ioBytes: WRITE_BYTES, flushEvery: FLUSH_EVERY, volumeBytes: VOLUME_BYTES } },
        seqwrite: { unit: 'MB/s', run: (pool) => (vol) => seqwrite(vol, VOLUME_BYTES, pool), extra: { byteLength: VOLUME_BYTES, ioBytes: MiB } },
      };
      const runs = Object.fromEntries(Object.keys(phases).map((p) => [p, { on: [], off: [] }]));
      const target = await startTarget(join(dir, 'target-overhead'));
      try {
        for (let r = 0; r < REPEATS; r++) {
          for (const [pattern, phase] of Object.entries(phases)) {
            for (const on of [false, true]) {
              // Fresh content per run (the target is shared: it must not hold a run's blocks already).
              const pool = seededBytes(POOL_BYTES, 1000 + 10 * r + (on ? 1 : 0) + (pattern === 'seqwrite' ? 5 : 0));
              const m = await overheadPhase(dir, target, `ovh-${pattern}-${r}-${on}`, on, phase.run(pool));
              runs[pattern][on ? 'on' : 'off'].push(m);
              log(`overhead run ${r} ${pattern} nearsync=${on}: ${m.throughput.toFixed(0)} ${phase.unit}, CPU s source ${m.sourceCpuS.toFixed(2)} target ${m.targetCpuS.toFixed(2)} (settled: ${m.sourceCpuSettledS.toFixed(2)} / ${m.targetCpuSettledS.toFixed(2)}), holds dropped ${m.holdsDropped}${on ? `, phase ${m.phase}, shipped ${m.shippedRecords} records in ${(m.shippedWireBytes / 1e6).toFixed(1)} MB` : ''}`);
            }
          }
        }
      } finally {
        await target.stop();
      }
      const med = (list, k) => Number(median(list.map((m) => m[k])).toFixed(3));
      const side = (list) => ({ throughput: med(list, 'throughput'), sourceCpuS: med(list, 'sourceCpuS'), targetCpuS: med(list, 'targetCpuS'), sourceCpuSettledS: med(list, 'sourceCpuSettledS'), targetCpuSettledS: med(list, 'targetCpuSettledS') });
      return Object.entries(phases).map(([pattern, phase]) => {
        const on = side(runs[pattern].on);
        const off = side(runs[pattern].off);
        const settledCpuRatio = Number((off.sourceCpuSettledS / (on.sourceCpuSettledS + on.targetCpuSettledS)).toFixed(3));
        return { bench: 'nearsync.overhead', value: on.throughput / off.throughput, unit: 'ratio', pattern, on: on.throughput, off: off.throughput, throughputUnit: phase.unit, settledCpuRatio, onCpu: on, offCpu: off, repeats: REPEATS, lwsIntervalMs: 1000, data: 'seeded random (incompressible, no repeated block), fresh per run', start: 'fresh source site per phase: empty log, engine stable', target: 'other process, TCP loopback', holdsDropped: runs[pattern].on.reduce((n, m) => n + m.holdsDropped, 0), ...phase.extra };
      });
    },
  },
  {
    name: 'nearsync.compose',
    async run({ dir, log }) {
      const LWS_COUNT = 600;
      const WRITES_PER_LWS = 128;
      const target = await startTarget(join(dir, 'target-compose'));
      const src = await sourceSite(dir, 'compose');
      try {
        const vol = await src.tree.createVolume({ name: 'db', byteLength: VOLUME_BYTES, blockBytes: 16 * KiB });
        // Seed with a full volume so the composed snapshot starts from real data.
        const fill = seededBytes(MiB, 1);
        for (let off = 0; off < VOLUME_BYTES; off += MiB) await vol.write(off, fill);
        await vol.flush();
        const tcp = countingTransport(TcpTransport.create());
        const remote = { siteId: 'B', address: target.address, transport: tcp.transport, psk };
        const shipper = src.site.nearSync(remote, { sessionId: 'compose', volumeIds: [vol.id] });
        const at = await shipper.markSeed();
        const [seed] = await src.tree.snapshotGroup([vol.id], { name: 'seed' });
        shipper.setBase(at.seq, new Map([[vol.id, seed.id]]));
        await src.site.replicate([seed.id], remote);
        const rnd = xorshift(5);
        const data = seededBytes(WRITE_BYTES, 8);
        for (let i = 0; i < LWS_COUNT; i++) {
          for (let k = 0; k < WRITES_PER_LWS; k++) {
            data[0] = k;
            await vol.write((rnd() % (VOLUME_BYTES / WRITE_BYTES)) * WRITE_BYTES, data);
          }
          const m = await shipper.mark();
          if (i % 20 === 19 || i === LWS_COUNT - 1) await shipper.ship(m);
        }
        await shipper.close();
        const [c] = await target.compose();
        log(`compose: ${LWS_COUNT} LWS x ${WRITES_PER_LWS} writes composed in ${(c.ms / 1000).toFixed(2)} s`);
        await vol.close();
        return [{ bench: 'nearsync.compose', value: c.ms / 1000, unit: 's', lwsCount: LWS_COUNT, writesPerLws: WRITES_PER_LWS, records: LWS_COUNT * WRITES_PER_LWS, recordBytes: LWS_COUNT * WRITES_PER_LWS * WRITE_BYTES, span: '10 minutes at one LWS a second (taken back to back)', volumeBytes: VOLUME_BYTES, target: 'other process, raw files + LMDB' }];
      } finally {
        await src.close();
        await target.stop();
      }
    },
  },
];
