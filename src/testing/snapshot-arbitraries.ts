/**
 * fast-check arbitraries of snapshot-tree workloads. Operations name volumes and
 * snapshots by a small integer that the runner maps onto whatever exists at that moment
 * (modulo the count), so every generated sequence is valid and shrinks well.
 */
import fc from 'fast-check';

/** One abstract operation of a snapshot workload. */
export type SnapshotOp =
  | { readonly kind: 'write'; readonly vol: number; readonly byteOffset: number; readonly data: Uint8Array }
  | { readonly kind: 'discard'; readonly vol: number; readonly byteOffset: number; readonly byteLength: number }
  | { readonly kind: 'snapshot'; readonly vol: number }
  | { readonly kind: 'group'; readonly vols: readonly number[] }
  | { readonly kind: 'clone'; readonly snap: number }
  | { readonly kind: 'restore'; readonly vol: number; readonly snap: number }
  | { readonly kind: 'deleteSnapshot'; readonly snap: number }
  | { readonly kind: 'deleteVolume'; readonly vol: number }
  | { readonly kind: 'diff'; readonly from: number; readonly to: number }
  | { readonly kind: 'read'; readonly snap: number; readonly byteOffset: number; readonly byteLength: number }
  | { readonly kind: 'flush' }
  | { readonly kind: 'reclaim'; readonly maxNodes: number }
  | { readonly kind: 'reopen' }
  | { readonly kind: 'crash' }
  | { readonly kind: 'crashDuring'; readonly afterWrites: number; readonly op: SnapshotOp };

/** Options of {@link snapshotOpsArbitrary}. */
export interface SnapshotOpsOptions {
  /** Length of every volume. */
  byteLength: number;
  /** Longest write or discard. @defaultValue min(byteLength, 3 * 4096) */
  maxIoBytes?: number;
  /** Most operations. @defaultValue 40 */
  maxOps?: number;
  /** Generate crash, crashDuring and reopen operations (needs a runner environment that supports them). @defaultValue true */
  faults?: boolean;
}

/** Random snapshot workloads. */
export function snapshotOpsArbitrary(options: SnapshotOpsOptions): fc.Arbitrary<SnapshotOp[]> {
  const maxIo = Math.max(1, Math.min(options.byteLength, options.maxIoBytes ?? 3 * 4096));
  const idx = fc.nat({ max: 15 });
  const range = fc
    .nat({ max: options.byteLength - 1 })
    .chain((byteOffset) => fc.integer({ min: 1, max: Math.min(maxIo, options.byteLength - byteOffset) }).map((byteLength) => ({ byteOffset, byteLength })));
  const content = (n: number) =>
    fc.oneof(
      fc.uint8Array({ minLength: n, maxLength: n }),
      fc.nat({ max: 3 }).map((v) => new Uint8Array(n).fill(v)), // few distinct values: dedup and zero blocks
    );
  const write = fc
    .tuple(idx, range)
    .chain(([vol, r]) => content(r.byteLength).map((data): SnapshotOp => ({ kind: 'write', vol, byteOffset: r.byteOffset, data })));
  const base: fc.Arbitrary<SnapshotOp> = fc.oneof(
    { arbitrary: write, weight: 8 },
    { arbitrary: fc.tuple(idx, range).map(([vol, r]): SnapshotOp => ({ kind: 'discard', vol, ...r })), weight: 1 },
    { arbitrary: idx.map((vol): SnapshotOp => ({ kind: 'snapshot', vol })), weight: 3 },
    { arbitrary: fc.uniqueArray(idx, { minLength: 2, maxLength: 3 }).map((vols): SnapshotOp => ({ kind: 'group', vols })), weight: 1 },
    { arbitrary: idx.map((snap): SnapshotOp => ({ kind: 'clone', snap })), weight: 1 },
    { arbitrary: fc.tuple(idx, idx).map(([vol, snap]): SnapshotOp => ({ kind: 'restore', vol, snap })), weight: 1 },
    { arbitrary: idx.map((snap): SnapshotOp => ({ kind: 'deleteSnapshot', snap })), weight: 2 },
    { arbitrary: idx.map((vol): SnapshotOp => ({ kind: 'deleteVolume', vol })), weight: 1 },
    { arbitrary: fc.tuple(fc.integer({ min: -1, max: 15 }), idx).map(([from, to]): SnapshotOp => ({ kind: 'diff', from, to })), weight: 1 },
    { arbitrary: fc.tuple(idx, range).map(([snap, r]): SnapshotOp => ({ kind: 'read', snap, ...r })), weight: 2 },
    { arbitrary: fc.constant<SnapshotOp>({ kind: 'flush' }), weight: 1 },
    { arbitrary: fc.integer({ min: 1, max: 4 }).map((maxNodes): SnapshotOp => ({ kind: 'reclaim', maxNodes })), weight: 1 },
  );
  if (options.faults === false) return fc.array(base, { maxLength: options.maxOps ?? 40 });
  const faulty = fc.oneof(
    { arbitrary: base, weight: 20 },
    { arbitrary: fc.constant<SnapshotOp>({ kind: 'reopen' }), weight: 1 },
    { arbitrary: fc.constant<SnapshotOp>({ kind: 'crash' }), weight: 2 },
    {
      arbitrary: fc.tuple(fc.integer({ min: 1, max: 6 }), base).map(([afterWrites, op]): SnapshotOp => ({ kind: 'crashDuring', afterWrites, op })),
      weight: 4,
    },
  );
  return fc.array(faulty, { minLength: Math.min(5, options.maxOps ?? 40), maxLength: options.maxOps ?? 40 });
}
