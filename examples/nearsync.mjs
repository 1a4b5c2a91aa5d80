// NearSync: light-weight snapshots (LWS) shipped continuously from the write log to a
// target in another process over TCP; the target restores any LWS point and composes a
// full snapshot from them without the source sending one.
//
// The parent opens a site on a directory (write log on by default), starts a NearSync
// engine with an LWS every 500 ms towards a child process (a second site on its own
// directory), writes a two-volume consistency group, waits until stable, then asks the
// child to restore the newest LWS (clone of the seed plus the LWS records, verified) and
// compares hashes, and to compose a full snapshot.
//
// Usage: npm run build && node examples/nearsync.mjs
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SystemClock } from '../dist/adapters/index.js';
import { TcpTransport } from '../dist/adapters/node.js';
import { LocalSite } from '../dist/local/index.js';
import { NearSyncEngine } from '../dist/policy/index.js';

const psk = new Uint8Array(32).fill(11);
const KiB = 1024;
const sha = async (vol) => createHash('sha256').update(await vol.read(0, vol.byteLength)).digest('hex').slice(0, 16);

if (process.argv[2] === '--target') {
  const local = await LocalSite.open({ dir: process.argv[3], create: true, siteId: 'dr', replication: { peerKeys: () => psk } });
  const listener = await local.site.listen(TcpTransport.create(), '127.0.0.1:0');
  process.stdout.write(`${JSON.stringify({ address: listener.address })}\n`);
  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, session, seq] = line.split(' ');
    const point = (await local.site.lws.points({ sessionId: session })).find((p) => p.seq === Number(seq));
    if (cmd === 'restore') {
      const clone = await local.site.lws.clone('prod', session, point.seq, `restored-${seq}/`);
      const hashes = {};
      for (const [id, v] of clone.volumes) {
        hashes[id] = await sha(v);
        await v.close();
      }
      const all = await local.site.lws.points({ sessionId: session });
      process.stdout.write(`${JSON.stringify({ hashes, replayed: clone.replayedRecords, points: all.length, valid: all.filter((p) => p.valid).length })}\n`);
    } else if (cmd === 'compose') {
      const t = performance.now();
      const snaps = await local.site.lws.compose('prod', session, point.seq, `hourly-${seq}`);
      process.stdout.write(`${JSON.stringify({ composed: [...snaps.values()].map((s) => s.name), ms: Math.round(performance.now() - t) })}\n`);
    }
  }
  await local.close();
} else {
  const dir = mkdtempSync(join(tmpdir(), 'drkit-nearsync-'));
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--target', join(dir, 'dr')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => JSON.parse((await lines.next()).value);
  let ok = false;
  try {
    const { address } = await next();
    const local = await LocalSite.open({ dir: join(dir, 'prod'), create: true, siteId: 'prod', replication: { peerKeys: () => psk } });
    const vols = [await local.tree.createVolume({ name: 'db', byteLength: 8 << 20 }), await local.tree.createVolume({ name: 'wal', byteLength: 4 << 20 })];
    // 1 MiB of content written before the seed: the target will hold its blocks.
    const held = new Uint8Array(1 << 20);
    for (let i = 0; i < held.length; i += 4) held[i] = (i * 2654435761) >>> 24 || 1;
    await vols[0].write(7 << 20, held);
    const events = [];
    const engine = await NearSyncEngine.open({ site: local.site, remote: { siteId: 'dr', address, transport: TcpTransport.create(), psk }, sessionId: 'orders', volumeIds: vols.map((v) => v.id), clock: new SystemClock(), lwsIntervalMs: 500, onEvent: (e) => events.push(e) });
    engine.start();
    let x = 9;
    for (let i = 0; i < 3000; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      const v = vols[i % 2];
      await v.write((x % (v.byteLength / (4 * KiB))) * 4 * KiB, new Uint8Array(4 * KiB).fill(x & 255));
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 20));
    }
    // Whole 16 KiB blocks of content the target already holds (the 1 MiB written before
    // the seed, copied elsewhere) ship as fingerprints, not data.
    const dedupedBefore = engine.dedupedBlocks;
    const wireBefore = engine.wireBytes;
    await vols[0].write(5 << 20, held);
    await vols[0].flush();
    const expected = Object.fromEntries(await Promise.all(vols.map(async (v) => [v.id, await sha(v)])));
    const from = events.length;
    let seq;
    while (seq === undefined) {
      await new Promise((r) => setTimeout(r, 100));
      const taken = events.slice(from).find((e) => e.kind === 'lws-taken');
      if (taken && events.some((e) => e.kind === 'lws-shipped' && e.seq >= taken.seq)) seq = taken.seq;
    }
    await engine.stop();
    const phases = events.filter((e) => e.kind === 'transition').map((e) => e.to);
    const shipped = events.filter((e) => e.kind === 'lws-shipped');
    console.log(`nearsync: ${phases.join(' -> ')}; ${shipped.length} LWS shipped (${shipped.reduce((n, e) => n + e.records, 0)} records, ${(engine.wireBytes / 1e6).toFixed(1)} MB) for 3000 random 4 KiB writes over 2 volumes`);
    child.stdin.write(`restore orders ${seq}\n`);
    const restored = await next();
    const same = vols.every((v) => restored.hashes[v.id] === expected[v.id]);
    console.log(`1 MiB of whole blocks the target holds, written at another offset: ${engine.dedupedBlocks - dedupedBefore} of 64 blocks shipped as fingerprint references (${((engine.wireBytes - wireBefore) / 1e6).toFixed(2)} MB on the wire since, with the random writes still shipping)`);
    console.log(`restore to LWS ${seq} at the target (seed clone + ${restored.replayed} verified records, ${restored.valid}/${restored.points} points valid): ${same ? 'both volumes identical to the source' : 'DIFFERS'}`);
    child.stdin.write(`compose orders ${seq}\n`);
    const composed = await next();
    console.log(`composed at the target from the LWS (no full snapshot sent): ${composed.composed.join(', ')} in ${composed.ms} ms`);
    for (const v of vols) await v.close();
    await local.close();
    ok = same;
  } finally {
    child.stdin.end();
    await new Promise((r) => child.on('close', r));
    rmSync(dir, { recursive: true, force: true });
  }
  if (!ok) process.exitCode = 1;
}
