// Cross-process crash test of LmdbMetaStore: a child process (the BUILT package; npm test
// builds first) commits numbered batches and reports each; this process SIGKILLs it at
// a seeded moment, reopens the store and checks it holds exactly the state after a
// prefix of the batches: every batch reported committed (a kill keeps the OS page
// cache, and LMDB reopens at the latest commit on the same boot), at most one more
// (committed but not yet reported), each complete, none partial.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { LmdbMetaStore } from '../../src/adapters/node.js';
import { SeededPrng } from '../../src/testing/internal/seeded-prng.js';

const SEEDS = Array.from({ length: 24 }, (_, i) => 0x1000 + i);
/** Children run two at a time: the CI machine has two cores. */
const PARALLEL_CHILDREN = 2;
const childScript = join(__dirname, 'fixtures', 'lmdb-kill-child.mjs');
const dir = mkdtempSync(join(tmpdir(), 'drkit-lmdb-kill-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Outcome {
  committed: number;
  durable: number;
  signal: NodeJS.Signals | null;
}

/** Runs the child until it has reported `killAfter` commits, waits a seeded few ms more, then SIGKILLs it. */
function runChild(path: string, seed: number, killAfter: number, extraDelayMs: number): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [childScript, path, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let committed = 0;
    let durable = 0;
    let stderr = '';
    let killed = false;
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const [what, n] = line.split(' ');
      if (what === 'committed') committed = Number(n);
      else if (what === 'durable') durable = Number(n);
      if (!killed && committed >= killAfter) {
        killed = true;
        if (extraDelayMs === 0) child.kill('SIGKILL');
        else setTimeout(() => child.kill('SIGKILL'), extraDelayMs);
      }
    });
    child.on('error', reject);
    child.on('exit', (_code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child exited on its own (${String(_code)}): ${stderr}`));
      // Lines read after the kill was sent still count: the child printed them.
      else setImmediate(() => resolve({ committed, durable, signal }));
    });
  });
}

const text = (bytes: Uint8Array | undefined): string | undefined => (bytes === undefined ? undefined : new TextDecoder().decode(bytes));

/** Reopens the store and checks it against the batch records it holds; returns the number of batches found. */
async function verify(path: string, outcome: Outcome): Promise<number> {
  const store = await LmdbMetaStore.open({ path });
  try {
    const all = new Map<string, Uint8Array>();
    for await (const [key, value] of store.iterate()) all.set(text(key)!, value);
    const head = all.has('head') ? Number(text(all.get('head'))) : 0;
    expect(head, 'every batch reported committed is present').toBeGreaterThanOrEqual(outcome.committed);
    expect(head, 'at most one batch beyond the last reported').toBeLessThanOrEqual(outcome.committed + 1);
    const expected = new Set<string>(head > 0 ? ['head'] : []);
    const deleted = new Set<string>();
    const records: { n: number; count: number; digests: string[]; deletes: string[] }[] = [];
    for (let n = 1; n <= head; n++) {
      const record = all.get(`n/${n}`);
      expect(record, `batch record n/${n}`).toBeDefined();
      const parsed = JSON.parse(text(record)!) as (typeof records)[number];
      expect(parsed.n).toBe(n);
      records.push(parsed);
      for (const k of parsed.deletes) deleted.add(k);
      expected.add(`n/${n}`).add(`s/${n % 5}`);
    }
    for (const { n, count, digests } of records) {
      for (let i = 0; i < count; i++) {
        const k = `d/${n}/${i}`;
        if (deleted.has(k)) continue;
        expected.add(k);
        expect(all.has(k), `${k} of a present batch`).toBe(true);
        expect(createHash('sha256').update(all.get(k)!).digest('hex'), `${k} value`).toBe(digests[i]);
      }
    }
    for (let j = 0; j < 5 && j < head + 1; j++) {
      const latest = head - ((((head - j) % 5) + 5) % 5);
      if (latest >= 1) expect(text(all.get(`s/${j}`)), `s/${j} holds the last overwrite`).toBe(String(latest));
    }
    // Nothing else: no key of a later batch, no key of a partial one.
    expect([...all.keys()].filter((k) => !expected.has(k))).toEqual([]);
    expect(all.size).toBe(expected.size);
    // The counters committed with the data agree with it.
    const stats = await store.stats();
    expect(stats.keyCount).toBe(all.size);
    let liveBytes = 0;
    for (const [k, v] of all) liveBytes += Buffer.byteLength(k, 'latin1') + v.length;
    expect(stats.liveBytes).toBe(liveBytes);
    // And the store keeps working.
    await store.batch([{ kind: 'put', key: new TextEncoder().encode('after'), value: Uint8Array.of(1) }], { sync: true });
    return head;
  } finally {
    await store.close();
  }
}

describe('LmdbMetaStore survives SIGKILL of its process', () => {
  it(`shows exactly a prefix of the committed batches (${SEEDS.length} seeds)`, { timeout: 60_000 }, async () => {
    let killedMidRun = 0;
    const queue = [...SEEDS];
    const worker = async (): Promise<void> => {
      for (let seed = queue.shift(); seed !== undefined; seed = queue.shift()) {
        const prng = new SeededPrng(seed);
        const killAfter = 1 + prng.below(60);
        const extraDelayMs = prng.below(4);
        const path = join(dir, `seed-${seed}`);
        try {
          const outcome = await runChild(path, seed, killAfter, extraDelayMs);
          // Not vacuous: the child really was killed after committing batches.
          expect(outcome.signal).toBe('SIGKILL');
          expect(outcome.committed).toBeGreaterThanOrEqual(killAfter);
          const head = await verify(path, outcome);
          if (head > outcome.durable) killedMidRun++;
        } catch (err) {
          throw new Error(`seed ${seed} (killAfter ${killAfter}, +${extraDelayMs} ms): ${(err as Error).message}`, { cause: err });
        }
      }
    };
    await Promise.all(Array.from({ length: PARALLEL_CHILDREN }, worker));
    // Some kills must have landed with committed-but-unflushed batches, or the test proves little.
    expect(killedMidRun).toBeGreaterThan(0);
  });
});
