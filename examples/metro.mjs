// Metro availability: a volume mirrored synchronously between two sites, each in its own
// process, with the witness (`drkit witness`) in a third. Site A (this process) writes;
// site B (this script run as a child with `--site-b`) mirrors. Then B is SIGKILLed: A
// continues alone once the witness has outdated B, tracking dirty regions; B restarts and
// only the dirty regions resync; the devices compare bit-identical. Last, a planned swap
// hands the active role to B with no write loss.
//
// Usage: npm run build && node examples/metro.mjs
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SystemClock } from '../dist/adapters/index.js';
import { RawFileBlockDevice, TcpTransport } from '../dist/adapters/node.js';
import { MirroredVolume, metadataBytesFor } from '../dist/metro/index.js';
import { SeededPrng } from '../dist/testing/core.js';

const VOLUME_BYTES = 16 * 1024 * 1024;
const REGION_BYTES = 64 * 1024;
const LEASE_MS = 2000;
const psk = new Uint8Array(32).fill(42);
const self = fileURLToPath(import.meta.url);
const say = (msg) => console.log(msg);

async function openSide({ dir, siteId, peerSiteId, role, listen, peer, witness, onEvent }) {
  const device = await RawFileBlockDevice.open({ path: join(dir, `${siteId}.img`), create: { byteLength: VOLUME_BYTES, openExisting: true } });
  const metaDevice = await RawFileBlockDevice.open({ path: join(dir, `${siteId}.meta`), create: { byteLength: Math.ceil(metadataBytesFor(VOLUME_BYTES, REGION_BYTES) / 4096) * 4096, openExisting: true } });
  const volume = await MirroredVolume.open({
    pairId: 'orders-db', siteId, peerSiteId, device, metaDevice, transport: TcpTransport.create(),
    listenAddress: listen, peerAddress: peer, witnessAddress: witness, psk, clock: new SystemClock(),
    initialRole: role, regionBytes: REGION_BYTES, peerTimeoutMs: 1000, pollMs: 100, onEvent,
  });
  return { volume, device, metaDevice };
}

if (process.argv[2] === '--site-b') {
  // The child: site B, until stdin closes (or SIGKILL).
  const [, , , dir, listen, peer, witness] = process.argv;
  const { volume, device } = await openSide({ dir, siteId: 'site-b', peerSiteId: 'site-a', role: 'standby', listen, peer, witness, onEvent: (e) => console.log(JSON.stringify({ event: e.kind, status: e.status, term: e.term })) });
  console.log(JSON.stringify({ ready: true }));
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'digest') console.log(JSON.stringify({ sha256: createHash('sha256').update(await device.read(0, VOLUME_BYTES)).digest('hex') }));
  }
  await volume.close();
  process.exit(0);
}

const freePort = () => new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => resolve(`127.0.0.1:${port}`));
  });
});

function child(args) {
  const proc = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiters = [];
  createInterface({ input: proc.stdout }).on('line', (line) => {
    const msg = JSON.parse(line);
    for (const w of [...waiters]) if (w.match(msg)) waiters.splice(waiters.indexOf(w), 1) && w.resolve(msg);
  });
  return { proc, next: (match) => new Promise((resolve) => waiters.push({ match, resolve })) };
}

const dir = mkdtempSync(join(tmpdir(), 'drkit-metro-example-'));
const procs = [];
try {
  writeFileSync(join(dir, 'psk.hex'), '2a'.repeat(32));
  const witness = child([join(self, '../../dist/cli.js'), '--json', 'witness', '--listen', '127.0.0.1:0', '--state', join(dir, 'witness.json'), '--psk-file', join(dir, 'psk.hex'), '--lease-ms', String(LEASE_MS)]);
  procs.push(witness.proc);
  const witnessAddress = (await witness.next((m) => m.type === 'listening')).address;
  const [aAddress, bAddress] = [await freePort(), await freePort()];
  const startB = async () => {
    const b = child([self, '--site-b', dir, bAddress, aAddress, witnessAddress]);
    procs.push(b.proc);
    await b.next((m) => m.ready === true);
    return b;
  };
  let b = await startB();
  const events = [];
  let waiting;
  const a = await openSide({ dir, siteId: 'site-a', peerSiteId: 'site-b', role: 'active', listen: aAddress, peer: bAddress, witness: witnessAddress, onEvent: (e) => { events.push(e); waiting?.(e); } });
  const until = (match) => new Promise((resolve) => { const prev = waiting; waiting = (e) => { prev?.(e); if (match(e)) resolve(e); }; });
  if (a.volume.status !== 'mirrored') await until((e) => e.status === 'mirrored');
  say(`witness ${witnessAddress} (lease ${LEASE_MS} ms); site A ${a.volume.status}, term ${a.volume.term}; site B in pid ${b.proc.pid}`);

  const prng = new SeededPrng(12);
  for (let i = 0; i < 256; i++) await a.volume.write(prng.below(VOLUME_BYTES / 4096) * 4096, prng.fill(new Uint8Array(4096)));
  await a.volume.flush();
  say(`256 x 4 KiB writes acknowledged only once durable at both sites; after the flush barrier ${a.volume.dirty.count} dirty regions`);

  b.proc.kill('SIGKILL');
  const degraded = until((e) => e.status === 'degraded');
  const written = [];
  for (let r = 0; r < 12; r++) {
    const region = (r * 37) % (VOLUME_BYTES / REGION_BYTES);
    written.push(region);
    await a.volume.write(region * REGION_BYTES + 512, prng.fill(new Uint8Array(8192)));
  }
  await degraded;
  say(`site B SIGKILLed: A continues alone (${a.volume.status}) after the witness outdated B; ${a.volume.dirty.count} dirty regions recorded durably`);

  const resynced = until((e) => e.kind === 'resynced');
  b = await startB();
  const r = (await resynced).resync;
  say(`site B restarted: delta resync moved ${r.regionCount} regions (${r.dataBytes} bytes of ${VOLUME_BYTES}), fingerprint-verified; A is ${a.volume.status}`);
  const digestB = await new Promise((resolve) => { b.next((m) => 'sha256' in m).then((m) => resolve(m.sha256)); b.proc.stdin.write('digest\n'); });
  const digestA = createHash('sha256').update(await a.device.read(0, VOLUME_BYTES)).digest('hex');
  say(`sha256 A ${digestA.slice(0, 16)} B ${digestB.slice(0, 16)}: ${digestA === digestB ? 'bit-identical' : 'DIFFERENT'}`);
  if (digestA !== digestB) throw new Error('the sites differ');

  await a.volume.swap();
  say(`planned swap: A is ${a.volume.role}; writes to A now fail SUSPENDED: ${await a.volume.write(0, new Uint8Array(4096)).then(() => 'no', (e) => e.code)}`);
  await a.volume.close();
  await a.device.close();
  await a.metaDevice.close();
} finally {
  for (const p of procs) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
