/**
 * Model-based property of the ExtentStore conformance suite: random put/delete/get/has/
 * list/flush (and reopen, where the store can) checked against a Map from id to bytes.
 */
import fc from 'fast-check';
import { vitest } from './vitest-api.js';
import type { ExtentStore } from '../../adapters/extent-store.js';
import { toHex } from '../../core/bytes.js';
import { isDrkitError } from '../../core/errors.js';
import { expectSameBytes, fixtureData, fixtureFingerprint } from './extent-fixtures.js';

/** Distinct extent ids a workload draws from: few, so puts, deletes and dedup collide often. */
const MODEL_IDS = 12;
/** Longest workload: keeps one run small; many runs give the coverage. */
const MODEL_MAX_OPS = 30;

type ModelOp =
  | { kind: 'put'; ids: number[] }
  | { kind: 'delete'; ids: number[] }
  | { kind: 'get'; id: number }
  | { kind: 'has'; ids: number[] }
  | { kind: 'list' }
  | { kind: 'flush' }
  | { kind: 'reopen' };

function opArbitrary(withReopen: boolean): fc.Arbitrary<ModelOp> {
  const id = fc.integer({ min: 0, max: MODEL_IDS - 1 });
  const ids = fc.array(id, { minLength: 1, maxLength: 4 });
  const ops: fc.WeightedArbitrary<ModelOp>[] = [
    { arbitrary: ids.map((v): ModelOp => ({ kind: 'put', ids: v })), weight: 5 },
    { arbitrary: ids.map((v): ModelOp => ({ kind: 'delete', ids: v })), weight: 2 },
    { arbitrary: id.map((v): ModelOp => ({ kind: 'get', id: v })), weight: 3 },
    { arbitrary: ids.map((v): ModelOp => ({ kind: 'has', ids: v })), weight: 2 },
    { arbitrary: fc.constant<ModelOp>({ kind: 'list' }), weight: 1 },
    { arbitrary: fc.constant<ModelOp>({ kind: 'flush' }), weight: 1 },
  ];
  if (withReopen) ops.push({ arbitrary: fc.constant<ModelOp>({ kind: 'reopen' }), weight: 1 });
  return fc.oneof(...ops);
}

/** Options of {@link runExtentStoreModel}. */
export interface ExtentStoreModelOptions {
  open: () => Promise<ExtentStore>;
  reopen?: (store: ExtentStore) => Promise<ExtentStore>;
  seed: number;
  numRuns: number;
}

/** Runs the property; fast-check reports the seed and the shrunk workload on failure. */
export async function runExtentStoreModel(options: ExtentStoreModelOptions): Promise<void> {
  await fc.assert(
    fc.asyncProperty(fc.array(opArbitrary(options.reopen !== undefined), { maxLength: MODEL_MAX_OPS }), async (ops) => {
      let store = await options.open();
      const model = new Map<number, Uint8Array>();
      try {
        for (const op of ops) store = await step(store, model, op, options.reopen);
        const stats = await store.stats();
        vitest().expect(stats.extentCount).toBe(model.size);
        vitest().expect(stats.extentBytes).toBe([...model.values()].reduce((n, d) => n + d.byteLength, 0));
      } finally {
        await store.close();
      }
    }),
    { seed: options.seed, numRuns: options.numRuns },
  );
}

async function step(
  store: ExtentStore,
  model: Map<number, Uint8Array>,
  op: ModelOp,
  reopen: ((store: ExtentStore) => Promise<ExtentStore>) | undefined,
): Promise<ExtentStore> {
  switch (op.kind) {
    case 'put':
      await store.put(op.ids.map((id) => ({ fingerprint: fixtureFingerprint(id), data: fixtureData(id) })));
      for (const id of op.ids) model.set(id, fixtureData(id));
      return store;
    case 'delete':
      await store.delete(op.ids.map(fixtureFingerprint));
      for (const id of op.ids) model.delete(id);
      return store;
    case 'get': {
      const want = model.get(op.id);
      if (want) {
        expectSameBytes(await store.get(fixtureFingerprint(op.id)), want);
      } else {
        const err = await store.get(fixtureFingerprint(op.id)).then(
          () => undefined,
          (e: unknown) => e,
        );
        vitest().expect(isDrkitError(err, 'EXTENT_NOT_FOUND'), `get of absent extent ${op.id} gave ${String(err)}`).toBe(true);
      }
      return store;
    }
    case 'has':
      vitest().expect(await store.has(op.ids.map(fixtureFingerprint))).toEqual(op.ids.map((id) => model.has(id)));
      return store;
    case 'list': {
      const listed: string[] = [];
      for await (const info of store.list()) listed.push(toHex(info.fingerprint));
      const want = [...model.keys()].map((id) => toHex(fixtureFingerprint(id))).sort();
      vitest().expect(listed).toEqual(want);
      return store;
    }
    case 'flush':
      await store.flush();
      return store;
    case 'reopen':
      // Only flushed state is promised across a reopen, so flush first: the model then stays exact.
      await store.flush();
      return reopen!(store);
  }
}
