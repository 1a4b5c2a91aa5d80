// Model-based test of the deferred extent reference counts of MapStore (map-store.ts):
// references taken and dropped without a prefetch are deltas, settled before each commit.
// Against a Map model, every committed count, every count a prefetch reports and the
// dead list must be what applying each change at once gives. A small cache makes the
// clean-cache paths (prefetch and settle both read it) take part. fast-check prints the
// seed and the shrunk operation list of a failure; rerun with DRKIT_SEED=<seed>.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryMetaStore } from '../../src/adapters/index.js';
import { bytesToKey } from '../../src/core/bytes.js';
import { MapStore } from '../../src/snapshot/internal/map-store.js';
import { decodeCount, TAG, TreeKeys } from '../../src/snapshot/internal/keys.js';

const seed = process.env.DRKIT_SEED === undefined ? 20261202 : Number(process.env.DRKIT_SEED);
const DIGEST_BYTES = 32;
const EXTENTS = 12; // few, so the operations keep meeting the same counts
/** ~6 cached counts (25% of the budget at 160 B each): evictions happen. */
const CACHE_BYTES = 4096;

type Op =
  | { kind: 'take'; e: number } // a shadow copies a reference held elsewhere (no prefetch)
  | { kind: 'drop'; e: number } // a slot overwritten or a leaf reclaimed (no prefetch)
  | { kind: 'takeNew'; e: number } // prefetch then reference (a write or mapBlocks: dedup decided by the count)
  | { kind: 'dropPrefetched'; e: number }
  | { kind: 'check'; e: number } // prefetch and read the count
  | { kind: 'commit' }
  | { kind: 'fail' }; // a failed commit: reset, the uncommitted changes are gone

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: EXTENTS - 1 }).map((e) => ({ kind: 'take', e }) as Op) },
  { weight: 4, arbitrary: fc.integer({ min: 0, max: EXTENTS - 1 }).map((e) => ({ kind: 'drop', e }) as Op) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: EXTENTS - 1 }).map((e) => ({ kind: 'takeNew', e }) as Op) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: EXTENTS - 1 }).map((e) => ({ kind: 'dropPrefetched', e }) as Op) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: EXTENTS - 1 }).map((e) => ({ kind: 'check', e }) as Op) },
  { weight: 2, arbitrary: fc.constant({ kind: 'commit' } as Op) },
  { weight: 1, arbitrary: fc.constant({ kind: 'fail' } as Op) },
);

function fingerprintOf(e: number): Uint8Array {
  const fp = new Uint8Array(DIGEST_BYTES);
  fp[0] = 0xa0;
  fp[DIGEST_BYTES - 1] = e;
  return fp;
}

async function run(ops: readonly Op[]): Promise<void> {
  const meta = await MemoryMetaStore.open();
  const keys = new TreeKeys(new Uint8Array([0x73, 0x74, 0x2f]));
  const map = new MapStore(meta, keys, DIGEST_BYTES, 1, CACHE_BYTES);
  const committed = new Array<number>(EXTENTS).fill(0);
  let current = committed.slice();
  /** Referenced from a count of 0 since the last commit (such an extent was stored: at 0 again it must be reclaimable). */
  let raisedFromZero = new Set<number>();
  const fps = Array.from({ length: EXTENTS }, (_, e) => fingerprintOf(e));
  const storedRc = async (e: number) => decodeCount(await meta.get(keys.fingerprint(TAG.extentRc, fps[e]!)));
  const inDeadList = async (e: number) => (await meta.get(keys.fingerprint(TAG.deadExtent, fps[e]!))) !== undefined;
  for (const [i, op] of ops.entries()) {
    const at = `op #${i} ${JSON.stringify(op)}`;
    switch (op.kind) {
      case 'take':
        // Only a reference that exists can be copied.
        if (current[op.e]! === 0) break;
        map.incExtent(fps[op.e]!);
        current[op.e]!++;
        break;
      case 'drop':
        if (current[op.e]! === 0) break;
        map.decExtent(fps[op.e]!);
        current[op.e]!--;
        break;
      case 'takeNew':
        await map.prefetchExtentRcs([fps[op.e]!]);
        expect(map.extentRc(fps[op.e]!), at).toBe(current[op.e]);
        if (current[op.e] === 0) raisedFromZero.add(op.e);
        map.incExtent(fps[op.e]!);
        current[op.e]!++;
        break;
      case 'dropPrefetched':
        if (current[op.e]! === 0) break;
        await map.prefetchExtentRcs([fps[op.e]!]);
        map.decExtent(fps[op.e]!);
        current[op.e]!--;
        break;
      case 'check':
        await map.prefetchExtentRcs([fps[op.e]!]);
        expect(map.extentRc(fps[op.e]!), at).toBe(current[op.e]);
        break;
      case 'commit': {
        await map.settleExtentRcs();
        const { ops: metaOps } = map.takeCommitOps();
        await meta.batch(metaOps);
        for (let e = 0; e < EXTENTS; e++) {
          expect(await storedRc(e), `${at}: committed count of extent ${e}`).toBe(current[e]);
          // Every extent that lost its last reference (or was stored and let go in this
          // commit) is in the dead list; one in use may stay listed (reclaim re-checks).
          const fell = current[e] === 0 && (committed[e]! > 0 || raisedFromZero.has(e));
          if (fell) expect(await inDeadList(e), `${at}: extent ${e} in the dead list`).toBe(true);
        }
        committed.splice(0, EXTENTS, ...current);
        raisedFromZero = new Set();
        break;
      }
      case 'fail':
        map.reset(1);
        current = committed.slice();
        raisedFromZero = new Set();
        break;
    }
  }
}

describe('MapStore deferred extent reference counts against a model', () => {
  it(`commits, prefetches and the dead list agree with applying every change at once (seed ${seed})`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 80 }), async (ops) => {
        await run([...ops, { kind: 'commit' }]);
      }),
      { seed, numRuns: 300 },
    );
  });

  it('a count settled from a delta replaces the cached one (a stale cache once over-counted a shadowed extent)', async () => {
    await run([{ kind: 'takeNew', e: 0 }, { kind: 'commit' }, { kind: 'check', e: 0 }, { kind: 'commit' }, { kind: 'take', e: 0 }, { kind: 'commit' }, { kind: 'check', e: 0 }]);
  });

  it('a commit without settling the deferred changes first is refused, not silently short', async () => {
    const meta = await MemoryMetaStore.open();
    const map = new MapStore(meta, new TreeKeys(new Uint8Array([0x73])), DIGEST_BYTES, 1, CACHE_BYTES);
    map.incExtent(fingerprintOf(1));
    expect(() => map.takeCommitOps()).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });

  it('settling a drop below zero is a coded INTERNAL error', async () => {
    const meta = await MemoryMetaStore.open();
    const map = new MapStore(meta, new TreeKeys(new Uint8Array([0x73])), DIGEST_BYTES, 1, CACHE_BYTES);
    map.decExtent(fingerprintOf(1));
    await expect(map.settleExtentRcs()).rejects.toMatchObject({ code: 'INTERNAL' });
  });

  it('a stored count under 4 bytes is CORRUPTION', () => {
    expect(() => decodeCount(new Uint8Array(3))).toThrow(expect.objectContaining({ code: 'CORRUPTION' }));
    expect(decodeCount(Uint8Array.of(1, 2, 0, 0))).toBe(0x201);
    expect(bytesToKey(Uint8Array.of(0x41))).toBe('A');
  });
});
