// Metro benches (issue 12). Site A (the active side) runs in this process; the peer B is
// test/metro/fixtures/metro-site-process.mjs in another process over TCP loopback, and
// the witness is `drkit witness` in a third. Devices are raw files on the bench dir's
// disk (sparse, fsync on flush): both sites share that one disk and the machine's cores.
//   metro.write.latency    4 KiB writes, one at a time: mirrored p50/p99 vs the same
//                          writes to a local raw file (write + flush); parts: TCP round
//                          trip of a 4 KiB frame to the peer process, and a peer-like
//                          durable 4 KiB write (write + flush of a second file).
//   metro.write.throughput 1 MiB writes, 4 in flight: mirrored MB/s over the MB/s of
//                          writing the same data into two local files at once (the
//                          value), and over one local file (`ratioToOneLocal`).
//   metro.resync           the peer is killed, 5% of the volume's 64 KiB regions are
//                          written in degraded mode, the peer restarts: wire bytes from
//                          A during the resync / dirty bytes (dirty regions x 64 KiB).
//   metro.takeover         A and B both in child processes; SIGKILL A; seconds until B
//                          accepted a write (the lease runs out first).
// Scale with DRKIT_BENCH_METRO_MIB (volume size, default 256).
import { spawn } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { SystemClock } from '../../dist/adapters/index.js';
import { RawFileBlockDevice, TcpTransport } from '../../dist/adapters/node.js';
import { MirroredVolume, metadataBytesFor } from '../../dist/metro/index.js';
import { countingTransport, mbPerSec, seededBytes } from '../util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const siteProcess = join(here, '../../test/metro/fixtures/metro-site-process.mjs');
const cli = join(here, '../../dist/cli.js');
const MiB = 1024 * 1024;
const KiB = 1024;
const VOLUME_BYTES = Number(process.env.DRKIT_BENCH_METRO_MIB ?? 256) * MiB;
const LEASE_MS = 3000;
const psk = new Uint8Array(32).fill(42);

function child(args) {
  const proc = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = [];
  const waiters = [];
  createInterface({ input: proc.stdout }).on('line', (line) => {
    const msg = JSON.parse(line);
    lines.push(msg);
    for (const w of [...waiters]) if (w.match(msg)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(msg);
    }
  });
  const exited = new Promise((r) => proc.on('exit', r));
  return {
    proc,
    lines,
    next: (match) => new Promise((resolve) => waiters.push({ match, resolve })),
    send: (cmd) => proc.stdin.write(`${JSON.stringify(cmd)}\n`),
    async kill(signal = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
  };
}

async function startWitness(dir) {
  writeFileSync(join(dir, 'psk.hex'), '2a'.repeat(32));
  const w = child([cli, '--json', 'witness', '--listen', '127.0.0.1:0', '--state', join(dir, 'witness.json'), '--psk-file', join(dir, 'psk.hex'), '--lease-ms', String(LEASE_MS)]);
  const { address } = await w.next((m) => m.type === 'listening');
  return { ...w, address };
}

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(`127.0.0.1:${port}`));
    });
  });

async function startPeer(dir, siteId, peerSiteId, role, listen, peerAddress, witnessAddress) {
  const p = child([siteProcess, siteId, peerSiteId, dir, role, listen, peerAddress, witnessAddress, String(VOLUME_BYTES)]);
  await p.next((m) => m.ready === true);
  return p;
}

async function rawFile(path, byteLength) {
  return RawFileBlockDevice.open({ path, create: { byteLength, openExisting: true } });
}

/** Site A in this process, mirrored to B in a child, with the witness in another. */
async function mirroredPair(dir, { counting = false } = {}) {
  const witness = await startWitness(dir);
  const aAddress = await freePort();
  const bAddress = await freePort();
  const b = await startPeer(dir, 'site-b', 'site-a', 'standby', bAddress, aAddress, witness.address);
  const device = await rawFile(join(dir, 'site-a.data'), VOLUME_BYTES);
  const metaDevice = await rawFile(join(dir, 'site-a.meta'), Math.ceil(metadataBytesFor(VOLUME_BYTES) / 4096) * 4096);
  const counted = countingTransport(TcpTransport.create());
  const events = [];
  let onEvent = () => undefined;
  const volume = await MirroredVolume.open({
    pairId: 'metro-test', siteId: 'site-a', peerSiteId: 'site-b', device, metaDevice,
    transport: counting ? counted.transport : TcpTransport.create(),
    listenAddress: aAddress, peerAddress: bAddress, witnessAddress: witness.address,
    psk, clock: new SystemClock(), initialRole: 'active', peerTimeoutMs: 1000, pollMs: 100,
    onEvent: (e) => {
      events.push(e);
      onEvent(e);
    },
  });
  const waitEvent = (match) => new Promise((resolve) => {
    const prev = onEvent;
    onEvent = (e) => {
      prev(e);
      if (match(e)) resolve(e);
    };
  });
  if (volume.status !== 'mirrored') await waitEvent((e) => e.status === 'mirrored');
  return {
    volume, device, b, witness, counter: counted.counter, events, waitEvent, bAddress, aAddress,
    async close() {
      await volume.close();
      // this.b: the peer may have been restarted (metro.resync) since the pair was made.
      await this.b.kill('SIGTERM');
      await witness.kill('SIGTERM');
      await device.close();
      await metaDevice.close();
    },
  };
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
const msSorted = (xs) => [...xs].sort((x, y) => x - y);

/** Round trip of a 4 KiB message to an echo in another process (what one mirrored write adds on the wire). */
async function rttSamples(count) {
  const echo = spawn(process.execPath, ['-e', "const n=require('node:net');const s=n.createServer(c=>c.on('data',d=>c.write(d.subarray(0,8))));s.listen(0,'127.0.0.1',()=>console.log(s.address().port))"], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = Number((await createInterface({ input: echo.stdout })[Symbol.asyncIterator]().next()).value);
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((r) => socket.once('connect', r));
  const payload = Buffer.alloc(4096, 1);
  const samples = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const got = new Promise((r) => socket.once('data', r));
    socket.write(payload);
    await got;
    samples.push(performance.now() - t0);
  }
  socket.destroy();
  echo.kill();
  return samples;
}

async function writeFlushSamples(device, count, bytes) {
  const samples = [];
  // The same warm-up pass as the mirrored run (the file's blocks are allocated by it).
  for (let i = 0; i < count; i++) {
    await device.write(((i * 7919) % (device.byteLength / bytes)) * bytes, seededBytes(bytes, i + 1));
    await device.flush();
  }
  for (let i = 0; i < count; i++) {
    const data = seededBytes(bytes, i + 1);
    const offset = ((i * 7919) % (device.byteLength / bytes)) * bytes;
    const t0 = performance.now();
    await device.write(offset, data);
    await device.flush();
    samples.push(performance.now() - t0);
  }
  return samples;
}

export default [
  {
    name: 'metro.write.latency',
    async run({ dir, log }) {
      const COUNT = 2000;
      const pair = await mirroredPair(dir);
      try {
        const mirrored = [];
        // Warm-up pass over the same offsets: a region's first write pays one durable bitmap
        // write (the activity log, DRBD's AL update); the measured pass is the steady state.
        for (let i = 0; i < COUNT; i++) await pair.volume.write(((i * 7919) % (VOLUME_BYTES / 4096)) * 4096, seededBytes(4096, i + 1));
        for (let i = 0; i < COUNT; i++) {
          const data = seededBytes(4096, i + 1);
          const t0 = performance.now();
          await pair.volume.write(((i * 7919) % (VOLUME_BYTES / 4096)) * 4096, data);
          mirrored.push(performance.now() - t0);
        }
        const local = await rawFile(join(dir, 'local.data'), VOLUME_BYTES);
        const localSamples = msSorted(await writeFlushSamples(local, COUNT, 4096));
        await local.close();
        const peerLike = await rawFile(join(dir, 'peer-like.data'), VOLUME_BYTES);
        const peerFlush = msSorted(await writeFlushSamples(peerLike, COUNT, 4096));
        await peerLike.close();
        const rtt = msSorted(await rttSamples(COUNT));
        const m = msSorted(mirrored);
        log(`metro.write.latency: mirrored p50 ${pct(m, 0.5).toFixed(3)} ms; local ${pct(localSamples, 0.5).toFixed(3)} + rtt ${pct(rtt, 0.5).toFixed(3)} + peer flush ${pct(peerFlush, 0.5).toFixed(3)}`);
        return [{ bench: 'metro.write.latency', value: pct(m, 0.5), unit: 'ms', p99: pct(m, 0.99), localP50: pct(localSamples, 0.5), rttP50: pct(rtt, 0.5), peerFlushP50: pct(peerFlush, 0.5), writes: COUNT, writeBytes: 4096, mode: 'durable' }];
      } finally {
        await pair.close();
      }
    },
  },
  {
    name: 'metro.write.throughput',
    async run({ dir, log }) {
      const WRITE_BYTES = MiB;
      const TOTAL_BYTES = Math.min(VOLUME_BYTES, 256 * MiB);
      const QUEUE_DEPTH = 4;
      const buffers = Array.from({ length: 8 }, (_, i) => seededBytes(WRITE_BYTES, i + 1));
      // Two passes over the same range, the second measured: the first allocates file blocks
      // and (mirrored) sets the activity-log bits, a durable bitmap write per new region.
      const drive = async (writeOne) => {
        await pass(writeOne);
        return pass(writeOne);
      };
      const pass = async (writeOne) => {
        const t0 = performance.now();
        let next = 0;
        await Promise.all(Array.from({ length: QUEUE_DEPTH }, async () => {
          for (;;) {
            const i = next++;
            if (i * WRITE_BYTES >= TOTAL_BYTES) return;
            await writeOne(i * WRITE_BYTES, buffers[i % buffers.length]);
          }
        }));
        return mbPerSec(TOTAL_BYTES, performance.now() - t0);
      };
      const pair = await mirroredPair(dir);
      let mirrored;
      try {
        mirrored = await drive((off, data) => pair.volume.write(off, data));
      } finally {
        await pair.close();
      }
      const l1 = await rawFile(join(dir, 'local1.data'), VOLUME_BYTES);
      const l2 = await rawFile(join(dir, 'local2.data'), VOLUME_BYTES);
      const flushBoth = async (dev, off, data) => {
        await dev.write(off, data);
        await dev.flush();
      };
      const two = await drive((off, data) => Promise.all([flushBoth(l1, off, data), flushBoth(l2, off, data)]));
      const l3 = await rawFile(join(dir, 'local3.data'), VOLUME_BYTES);
      const one = await drive((off, data) => flushBoth(l3, off, data));
      for (const d of [l1, l2, l3]) await d.close();
      log(`metro.write.throughput: mirrored ${mirrored.toFixed(1)} MB/s, two local files at once ${two.toFixed(1)} MB/s, one local ${one.toFixed(1)} MB/s`);
      return [{ bench: 'metro.write.throughput', value: mirrored / two, unit: 'ratio', mirroredMBps: mirrored, twoLocalMBps: two, oneLocalMBps: one, ratioToOneLocal: mirrored / one, writeBytes: WRITE_BYTES, totalBytes: TOTAL_BYTES, queueDepth: QUEUE_DEPTH }];
    },
  },
  {
    name: 'metro.resync',
    async run({ dir, log }) {
      const pair = await mirroredPair(dir, { counting: true });
      try {
        const REGION = 64 * KiB;
        const regionCount = VOLUME_BYTES / REGION;
        // Fill the volume mirrored, flush (clears the activity log), then lose the peer.
        for (let off = 0; off < VOLUME_BYTES; off += 4 * MiB) await pair.volume.write(off, seededBytes(4 * MiB, off / MiB + 1));
        await pair.volume.flush();
        const degraded = pair.waitEvent((e) => e.status === 'degraded');
        await pair.b.kill();
        // 5% of the regions, chosen by a fixed stride, written whole in degraded mode.
        const dirtyCount = Math.round(regionCount * 0.05);
        let first = true;
        for (let k = 0; k < dirtyCount; k++) {
          const r = (k * 7919) % regionCount;
          await pair.volume.write(r * REGION, seededBytes(REGION, 1_000_000 + k)).catch(async (err) => {
            if (!first || err.code !== 'SUSPENDED') throw err;
            await degraded;
            await pair.volume.write(r * REGION, seededBytes(REGION, 1_000_000 + k));
          });
          first = false;
        }
        const dirtyBytes = pair.volume.dirty.count * REGION;
        const wireBefore = pair.counter.bytes;
        const resynced = pair.waitEvent((e) => e.kind === 'resynced');
        const t0 = performance.now();
        pair.b = await startPeer(dir, 'site-b', 'site-a', 'standby', pair.bAddress, pair.aAddress, pair.witness.address);
        const event = await resynced;
        const seconds = (performance.now() - t0) / 1000;
        const wire = pair.counter.bytes - wireBefore;
        log(`metro.resync: ${event.resync.regionCount} regions, ${dirtyBytes} dirty bytes, ${wire} wire bytes, ${seconds.toFixed(2)} s (includes the peer process start)`);
        return [{ bench: 'metro.resync', value: wire / dirtyBytes, unit: 'ratio', seconds, dirtyBytes, wireBytes: wire, regions: event.resync.regionCount, regionBytes: REGION, volumeBytes: VOLUME_BYTES }];
      } finally {
        await pair.close();
      }
    },
  },
  {
    name: 'metro.takeover',
    async run({ dir, log }) {
      const witness = await startWitness(dir);
      const aAddress = await freePort();
      const bAddress = await freePort();
      mkdirSync(dir, { recursive: true });
      const a = await startPeer(dir, 'site-a', 'site-b', 'active', aAddress, bAddress, witness.address);
      const b = await startPeer(dir, 'site-b', 'site-a', 'standby', bAddress, aAddress, witness.address);
      try {
        await a.next((m) => m.event === 'status' && m.status === 'mirrored');
        a.send({ op: 'load', blocks: 256, bytes: 4096 });
        await a.next((m) => typeof m.acked === 'number' && m.acked >= 500);
        const t0 = performance.now();
        await a.kill();
        // Ask B to write until it accepts.
        for (;;) {
          const answer = b.next((m) => 'wrote' in m || 'error' in m);
          b.send({ op: 'write', byteOffset: 0, seed: 1, bytes: 4096 });
          if ((await answer).wrote === true) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        const seconds = (performance.now() - t0) / 1000;
        log(`metro.takeover: ${seconds.toFixed(3)} s with a ${LEASE_MS} ms lease`);
        return [{ bench: 'metro.takeover', value: seconds, unit: 's', leaseMs: LEASE_MS, pollMs: 100, peerTimeoutMs: 1000 }];
      } finally {
        await a.kill();
        await b.kill('SIGTERM');
        await witness.kill('SIGTERM');
      }
    },
  },
];
