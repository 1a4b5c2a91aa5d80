/**
 * A trivially correct MetaStore model (a JS Map plus a sort) and fast-check
 * arbitraries of batches and range queries, for the model-based conformance property.
 */
import fc from 'fast-check';
import type { MetaOp, MetaRange } from '../../adapters/meta-store.js';
import { compareBytes, toHex } from '../../core/bytes.js';

/** The model: hex key -> [key, value]. */
export class MetaStoreModel {
  readonly entries = new Map<string, [Uint8Array, Uint8Array]>();

  apply(ops: readonly MetaOp[]): void {
    for (const op of ops) {
      if (op.kind === 'put') this.entries.set(toHex(op.key), [op.key.slice(), op.value.slice()]);
      else this.entries.delete(toHex(op.key));
    }
  }

  get(key: Uint8Array): Uint8Array | undefined {
    return this.entries.get(toHex(key))?.[1];
  }

  /** Entries within `range`, by the contract's definition, computed the slow obvious way. */
  range(range: MetaRange = {}): [Uint8Array, Uint8Array][] {
    const startsWith = (key: Uint8Array, prefix: Uint8Array): boolean =>
      key.length >= prefix.length && compareBytes(key.subarray(0, prefix.length), prefix) === 0;
    const out = [...this.entries.values()]
      .filter(([key]) => range.gt === undefined || compareBytes(key, range.gt) > 0)
      .filter(([key]) => range.gte === undefined || compareBytes(key, range.gte) >= 0)
      .filter(([key]) => range.lt === undefined || compareBytes(key, range.lt) < 0)
      .filter(([key]) => range.lte === undefined || compareBytes(key, range.lte) <= 0)
      .filter(([key]) => range.prefix === undefined || startsWith(key, range.prefix))
      .sort((a, b) => compareBytes(a[0], b[0]));
    if (range.reverse === true) out.reverse();
    return range.limit === undefined ? out : out.slice(0, range.limit);
  }
}

/** Short keys over a few edge bytes (0x00, 0xff, ...), so bounds, prefixes and collisions are common. */
export const keyArbitrary = fc
  .array(fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff), { maxLength: 3 })
  .map((bytes) => Uint8Array.from(bytes));

/** One batch op. */
export const opArbitrary: fc.Arbitrary<MetaOp> = fc.oneof(
  fc.record({ kind: fc.constant('put' as const), key: keyArbitrary, value: fc.uint8Array({ maxLength: 12 }) }),
  fc.record({ kind: fc.constant('del' as const), key: keyArbitrary }),
);

/** A range query with any mix of bounds, prefix, direction and limit. */
export const rangeArbitrary: fc.Arbitrary<MetaRange> = fc
  .record(
    {
      gt: keyArbitrary,
      gte: keyArbitrary,
      lt: keyArbitrary,
      lte: keyArbitrary,
      prefix: keyArbitrary,
      reverse: fc.boolean(),
      limit: fc.nat({ max: 6 }),
    },
    { requiredKeys: [] },
  );

/** A step of the model run: a batch or a range query. */
export type ModelStep = { kind: 'batch'; ops: MetaOp[] } | { kind: 'range'; range: MetaRange } | { kind: 'get'; key: Uint8Array };

export const stepsArbitrary: fc.Arbitrary<ModelStep[]> = fc.array(
  fc.oneof(
    { weight: 3, arbitrary: fc.array(opArbitrary, { maxLength: 8 }).map((ops) => ({ kind: 'batch' as const, ops })) },
    { weight: 2, arbitrary: rangeArbitrary.map((range) => ({ kind: 'range' as const, range })) },
    { weight: 1, arbitrary: keyArbitrary.map((key) => ({ kind: 'get' as const, key })) },
  ),
  { maxLength: 25 },
);
