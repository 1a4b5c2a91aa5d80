// Metro with real processes: two sites (test/metro/fixtures/metro-site-process.mjs, raw
// files, TCP) and the witness (`drkit witness`, the built CLI), every link through a TCP
// relay this test cuts and heals. Uses the built package (npm test builds first).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { SeededPrng } from '../../dist/testing/core.js';
import { startCuttableRelay, type CuttableRelay } from './cuttable-relay.js';

const KiB = 1024;
const VOLUME_BYTES = 4 * 1024 * KiB;
const LEASE_MS = 2000;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Proc {
  readonly child: ChildProcess;
  /** Every JSON line so far. */
  readonly lines: Record<string, unknown>[];
  next(match: (msg: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  send(cmd: Record<string, unknown>): void;
  kill(): Promise<void>;
}

function startProc(args: string[]): Proc {
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  const lines: Record<string, unknown>[] = [];
  const waiters: { match: (m: Record<string, unknown>) => boolean; resolve: (m: Record<string, unknown>) => void; from: number }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const msg = JSON.parse(line) as Record<string, unknown>;
    lines.push(msg);
    for (const w of [...waiters]) if (w.match(msg)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(msg);
    }
  });
  const proc: Proc = {
    child,
    lines,
    next(match, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching line within ${timeoutMs} ms; last: ${JSON.stringify(lines.slice(-5))}`)), timeoutMs);
        waiters.push({ match, from: lines.length, resolve: (m) => (clearTimeout(timer), resolve(m)) });
      });
    },
    send(cmd) {
      child.stdin!.write(`${JSON.stringify(cmd)}\n`);
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
  cleanups.push(() => proc.kill());
  return proc;
}

async function ask(p: Proc, cmd: Record<string, unknown>, key: string): Promise<Record<string, unknown>> {
  const answer = p.next((m) => key in m || 'error' in m);
  p.send(cmd);
  return answer;
}

interface Pair {
  readonly dir: string;
  readonly witness: Proc;
  readonly relays: { ab: CuttableRelay; ba: CuttableRelay; aw: CuttableRelay; bw: CuttableRelay };
  a: Proc;
  b: Proc;
  startSite(id: 'a' | 'b', role: 'active' | 'standby'): Promise<Proc>;
}

async function startPair(): Promise<Pair> {
  const dir = mkdtempSync(join(tmpdir(), 'drkit-metro-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'psk.hex'), '2a'.repeat(32));
  const witness = startProc([resolve(__dirname, '../../dist/cli.js'), '--json', 'witness', '--listen', '127.0.0.1:0', '--state', join(dir, 'witness.json'), '--psk-file', join(dir, 'psk.hex'), '--lease-ms', String(LEASE_MS)]);
  const listening = await witness.next((m) => m.type === 'listening');
  const relays = { ab: await startCuttableRelay(), ba: await startCuttableRelay(), aw: await startCuttableRelay(String(listening.address)), bw: await startCuttableRelay(String(listening.address)) };
  for (const r of Object.values(relays)) cleanups.push(() => r.close());
  // Fixed listen ports picked by the relays' neighbours: each site listens on a port of its own choosing (0) and the relays learn it.
  const pair = {
    dir,
    witness,
    relays,
    a: undefined as unknown as Proc,
    b: undefined as unknown as Proc,
    async startSite(id: 'a' | 'b', role: 'active' | 'standby') {
      const peerRelay = id === 'a' ? relays.ab : relays.ba;
      const witnessRelay = id === 'a' ? relays.aw : relays.bw;
      const listen = id === 'a' ? (pair.aListen ?? '127.0.0.1:0') : (pair.bListen ?? '127.0.0.1:0');
      const p = startProc([join(__dirname, 'fixtures/metro-site-process.mjs'), `site-${id}`, `site-${id === 'a' ? 'b' : 'a'}`, dir, role, listen, peerRelay.address, witnessRelay.address, String(VOLUME_BYTES)]);
      const ready = await p.next((m) => m.ready === true);
      // The relay towards this site forwards to where it listens (the same port after a restart).
      (id === 'a' ? relays.ba : relays.ab).target = String(ready.address);
      if (id === 'a') pair.aListen = String(ready.address);
      else pair.bListen = String(ready.address);
      pair[id] = p;
      return p;
    },
  } as Pair & { aListen?: string; bListen?: string };
  await pair.startSite('a', 'active');
  await pair.startSite('b', 'standby');
  await pair.a.next((m) => m.event === 'status' && m.status === 'mirrored');
  return pair;
}

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const dataOf = (seed: number, bytes: number) => new SeededPrng(seed + 1).fill(new Uint8Array(bytes));

describe('Metro across processes (two sites, the witness, relays the test cuts)', () => {
  it('SIGKILL of the active site during a write load: the survivor takes over and holds every acknowledged write', async () => {
    const pair = await startPair();
    const BLOCKS = 64;
    const BYTES = 4 * KiB;
    pair.a.send({ op: 'load', blocks: BLOCKS, bytes: BYTES });
    // Let a few hundred writes be acknowledged, then kill the active site mid-load.
    await pair.a.next((m) => typeof m.acked === 'number' && m.acked >= 300);
    const killedAt = Date.now();
    await pair.a.kill();
    expect(pair.a.child.signalCode).toBe('SIGKILL');
    const acked = pair.a.lines.filter((m) => typeof m.acked === 'number').map((m) => m.acked as number);
    expect(acked.length).toBeGreaterThanOrEqual(300);
    const promoted = await pair.b.next((m) => m.event === 'promoted', LEASE_MS + 10_000);
    const takeoverMs = Date.now() - killedAt;
    expect(takeoverMs).toBeLessThanOrEqual(LEASE_MS + 1000 + 500);
    expect(promoted.term).toBeGreaterThan(1);
    // Every block holds its last acknowledged write, or the one write that was in flight at the kill
    // (the load awaits each write, so at most write lastAcked + 1 was unacknowledged).
    const lastAcked = Math.max(...acked);
    expect(acked).toEqual(Array.from({ length: acked.length }, (_, i) => i));
    for (let block = 0; block < BLOCKS; block++) {
      const got = (await ask(pair.b, { op: 'read', byteOffset: block * BYTES, bytes: BYTES }, 'sha256')).sha256;
      const last = lastAcked - ((lastAcked - block) % BLOCKS + BLOCKS) % BLOCKS;
      const candidates = [sha(dataOf(last, BYTES))];
      if ((lastAcked + 1) % BLOCKS === block) candidates.push(sha(dataOf(lastAcked + 1, BYTES)));
      expect(candidates, `block ${block} lost acknowledged write ${last}`).toContain(got);
    }
    const w = await ask(pair.b, { op: 'write', byteOffset: 0, seed: 5, bytes: 4096 }, 'wrote');
    expect(w.wrote).toBe(true);
  }, 60_000);

  it('a cut between the sites: exactly one side continues; after healing both are bit-identical and the resync moved only dirty regions', async () => {
    const pair = await startPair();
    const REGION = 64 * KiB;
    for (let r = 0; r < 8; r++) await ask(pair.a, { op: 'write', byteOffset: r * REGION, seed: r, bytes: REGION }, 'wrote');
    // A mirrored flush barrier clears the activity-log bits of those writes.
    await ask(pair.a, { op: 'flush' }, 'flushed');
    expect((await ask(pair.a, { op: 'status' }, 'status')).dirty).toBe(0);
    pair.relays.ab.cut();
    pair.relays.ba.cut();
    // The active side continues alone once the witness outdated the standby.
    const degraded = pair.a.next((m) => m.event === 'status' && m.status === 'degraded');
    const written = [3, 10, 40];
    for (const r of written) expect((await ask(pair.a, { op: 'write', byteOffset: r * REGION + 100, seed: 100 + r, bytes: 2000 }, 'wrote')).wrote).toBe(true);
    await degraded;
    // The standby refuses writes, and stays standby past a whole lease.
    expect((await ask(pair.b, { op: 'write', byteOffset: 0, seed: 1, bytes: 512 }, 'wrote')).error).toBe('SUSPENDED');
    await new Promise((r) => setTimeout(r, LEASE_MS + 1000));
    expect((await ask(pair.b, { op: 'status' }, 'status')).role).toBe('standby');
    expect((await ask(pair.a, { op: 'status' }, 'status')).dirty).toBe(written.length);
    const before = pair.relays.ab.bytes.forward;
    const resynced = pair.a.next((m) => m.event === 'resynced', 20_000);
    pair.relays.ab.heal();
    pair.relays.ba.heal();
    const event = await resynced;
    const moved = pair.relays.ab.bytes.forward - before;
    expect((event.resync as { regionCount: number; dataBytes: number }).dataBytes).toBe(written.length * REGION);
    expect(moved).toBeGreaterThanOrEqual(written.length * REGION);
    expect(moved).toBeLessThan(written.length * REGION * 1.1);
    await ask(pair.a, { op: 'flush' }, 'flushed');
    const da = (await ask(pair.a, { op: 'digest' }, 'sha256')).sha256;
    const db = (await ask(pair.b, { op: 'digest' }, 'sha256')).sha256;
    expect(da).toBe(db);
  }, 60_000);
});
