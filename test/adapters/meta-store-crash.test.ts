/**
 * Crash recovery of LogMetaStore under FaultyBlockDevice: after a crash at a random
 * write (inside a commit, a group commit, a compaction, an open), the reopened store
 * shows the model state after some prefix of the batches that contains every batch whose
 * durable commit resolved. Several sessions per seed, so recovery of a recovered log
 * (sealing, epochs, stale bytes past the tail) is exercised too. And bit rot inside a
 * committed non-tail record is rejected with CORRUPTION, never silently dropped.
 */
import { describe, expect, it } from 'vitest';
import { LogMetaStore, MemoryBlockDevice, type MetaOp } from '../../src/adapters/index.js';
import { FaultyBlockDevice } from '../../src/testing/index.js';
import { toHex } from '../../src/core/bytes.js';
import { isDrkitError } from '../../src/core/errors.js';

/** mulberry32: a tiny seeded PRNG, so every run of a seed is identical. */
function prng(seed: number): { below(n: number): number; chance(p: number): boolean } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { below: (n) => Math.floor(next() * n), chance: (p) => next() < p };
}

type State = Map<string, string>;

function applyOps(state: State, ops: readonly MetaOp[]): State {
  const next = new Map(state);
  for (const op of ops) {
    if (op.kind === 'put') next.set(toHex(op.key), toHex(op.value));
    else next.delete(toHex(op.key));
  }
  return next;
}

const canonical = (state: State): string => JSON.stringify([...state.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)));

async function readState(store: LogMetaStore): Promise<State> {
  const state: State = new Map();
  for await (const [key, value] of store.iterate()) state.set(toHex(key), toHex(value));
  return state;
}

function randomOps(rng: ReturnType<typeof prng>, round: number): MetaOp[] {
  const ops: MetaOp[] = [];
  const count = 1 + rng.below(6);
  for (let i = 0; i < count; i++) {
    const key = Uint8Array.of(rng.below(24));
    if (rng.chance(0.2)) ops.push({ kind: 'del', key });
    else {
      // Mostly small values; sometimes a few KiB, so writes cross 512 B sectors and tear.
      const byteLength = rng.chance(0.15) ? 600 + rng.below(3000) : rng.below(40);
      ops.push({ kind: 'put', key, value: new Uint8Array(byteLength).fill((round * 7 + i) & 0xff) });
    }
  }
  return ops;
}

const STORE_OPTIONS = { compactMinDeadBytes: 2048, compactDeadRatio: 0.4 };
const SEEDS = Number(process.env.CRASH_SEEDS ?? 400);

/** One session: open (maybe crashing inside it), run random calls until the armed crash fires. */
async function crashSession(inner: MemoryBlockDevice, seed: number, session: number, base: State): Promise<State> {
  const rng = prng(seed * 7919 + session);
  const faulty = new FaultyBlockDevice(inner, { seed: seed * 31 + session, ownsInner: false });
  const armBeforeOpen = rng.chance(0.15);
  if (armBeforeOpen) faulty.crashAfterWrites(1 + rng.below(6));
  const batches: MetaOp[][] = [];
  let durable = 0;
  let store: LogMetaStore | undefined;
  try {
    store = await LogMetaStore.open({ device: faulty, ...STORE_OPTIONS });
    if (!armBeforeOpen) faulty.crashAfterWrites(1 + rng.below(40));
    for (let step = 0; step < 60 && !faulty.crashed; step++) {
      const roll = rng.below(10);
      if (roll < 5) {
        const ops = randomOps(rng, step);
        const index = batches.push(ops);
        const sync = rng.chance(0.35);
        await store.batch(ops, { sync });
        if (sync) durable = Math.max(durable, index);
      } else if (roll < 7) {
        // Concurrent committers share a group commit.
        const group = Array.from({ length: 2 + rng.below(3) }, () => randomOps(rng, step));
        const indices = group.map((ops) => batches.push(ops));
        await Promise.all(group.map((ops) => store!.batch(ops, { sync: true })));
        durable = Math.max(durable, ...indices);
      } else if (roll < 9) {
        const covered = batches.length;
        await store.flush();
        durable = Math.max(durable, covered);
      } else {
        const covered = batches.length;
        await store.compact();
        durable = Math.max(durable, covered);
      }
    }
  } catch (err) {
    if (!isDrkitError(err, 'CRASHED')) throw err;
  }
  await faulty.crash();
  await store?.close().catch(() => undefined);

  const reopened = await LogMetaStore.open({ device: inner, ...STORE_OPTIONS });
  try {
    const visible = canonical(await readState(reopened));
    const states = [base];
    for (const ops of batches) states.push(applyOps(states[states.length - 1]!, ops));
    const match = states.findIndex((s, i) => i >= durable && canonical(s) === visible);
    expect(match, `seed ${seed} session ${session}: visible state is no allowed prefix (durable ${durable} of ${batches.length} batches)`).toBeGreaterThanOrEqual(0);
    return states[match]!;
  } finally {
    await reopened.close();
  }
}

describe('LogMetaStore crash recovery', () => {
  it(`recovers a prefix containing every durable batch, over ${SEEDS} seeds`, async () => {
    for (let seed = Number(process.env.CRASH_FIRST ?? 1); seed <= SEEDS; seed++) {
      const inner = await MemoryBlockDevice.create({ byteLength: 64 * 1024 });
      let state: State = new Map();
      try {
        for (let session = 0; session < 3; session++) state = await crashSession(inner, seed, session, state);
      } catch (err) {
        throw new Error(`crash property failed for seed ${seed}: ${String(err)}`, { cause: err });
      }
    }
  });

  for (const mode of ['sealed by a clean reopen', 'unsealed (crash after sync commits)'] as const) {
    it(`bit rot inside a committed non-tail record is CORRUPTION (${mode})`, async () => {
      for (let seed = 1; seed <= 60; seed++) {
        const rng = prng(seed);
        const inner = await MemoryBlockDevice.create({ byteLength: 64 * 1024 });
        const faulty = new FaultyBlockDevice(inner, { seed, ownsInner: false });
        const store = await LogMetaStore.open({ device: faulty });
        // With nothing pending, storedBytes = log region start + bytes of this generation.
        const ends: number[] = [(await store.stats()).storedBytes];
        const recordCount = 3 + rng.below(5);
        for (let i = 0; i < recordCount; i++) {
          await store.batch(randomOps(rng, i), { sync: true });
          ends.push((await store.stats()).storedBytes);
        }
        if (mode === 'sealed by a clean reopen') {
          await store.close();
          await (await LogMetaStore.open({ device: inner })).close();
        } else {
          await faulty.crash();
        }
        // A record that is not the last: [ends[i], ends[i + 1]).
        const i = rng.below(recordCount - 1);
        const byteOffset = ends[i]! + rng.below(ends[i + 1]! - ends[i]!);
        const byte = await inner.read(byteOffset, 1);
        byte[0]! ^= 1 << rng.below(8);
        await inner.write(byteOffset, byte);
        const err = await LogMetaStore.open({ device: inner }).then(
          async (s) => {
            await s.close();
            return undefined;
          },
          (e: unknown) => e,
        );
        expect(isDrkitError(err, 'CORRUPTION'), `seed ${seed}: flipped byte ${byteOffset} of record ${i}; open gave ${String(err)}`).toBe(true);
      }
    });
  }
});
