/**
 * fast-check arbitraries for block-device I/O workloads, and the trivially correct model
 * they are checked against (a flat Uint8Array). Users property-test their own devices
 * and stores with them.
 */
import fc from 'fast-check';
import type { BlockDevice } from '../adapters/block-device.js';

/** One operation of an I/O workload. */
export type IoOp =
  | { readonly kind: 'write'; readonly byteOffset: number; readonly data: Uint8Array }
  | { readonly kind: 'read'; readonly byteOffset: number; readonly byteLength: number }
  | { readonly kind: 'discard'; readonly byteOffset: number; readonly byteLength: number }
  | { readonly kind: 'flush' };

/** Options of {@link ioWorkloadArbitrary}. */
export interface IoWorkloadOptions {
  /** Device length the offsets must fit in. */
  byteLength: number;
  /** Offsets and lengths are multiples of this. @defaultValue 1 */
  alignmentBytes?: number;
  /** Longest single write/read/discard in bytes. @defaultValue min(byteLength, 16384) */
  maxIoBytes?: number;
  /** Most operations in one workload. @defaultValue 50 */
  maxOps?: number;
  /** Include discard operations. @defaultValue true */
  discard?: boolean;
}

/** An arbitrary (offset, length) range inside the device, aligned. */
function rangeArb(byteLength: number, alignmentBytes: number, maxIoBytes: number) {
  const units = Math.floor(byteLength / alignmentBytes);
  const maxUnits = Math.max(1, Math.floor(maxIoBytes / alignmentBytes));
  return fc
    .integer({ min: 0, max: units - 1 })
    .chain((startUnit) =>
      fc.integer({ min: 1, max: Math.min(maxUnits, units - startUnit) }).map((lengthUnits) => ({
        byteOffset: startUnit * alignmentBytes,
        byteLength: lengthUnits * alignmentBytes,
      })),
    );
}

/** A random sequence of {@link IoOp}s that fits a device of `byteLength` bytes. */
export function ioWorkloadArbitrary(options: IoWorkloadOptions): fc.Arbitrary<IoOp[]> {
  const alignmentBytes = options.alignmentBytes ?? 1;
  const maxIoBytes = options.maxIoBytes ?? Math.min(options.byteLength, 16384);
  const range = rangeArb(options.byteLength, alignmentBytes, maxIoBytes);
  const write = range.chain(({ byteOffset, byteLength }) =>
    fc
      .oneof(
        fc.uint8Array({ minLength: byteLength, maxLength: byteLength }),
        // Repetitive content: exercises dedup and compressible paths.
        fc.integer({ min: 0, max: 255 }).map((fill) => new Uint8Array(byteLength).fill(fill)),
      )
      .map((data): IoOp => ({ kind: 'write', byteOffset, data })),
  );
  const read = range.map(({ byteOffset, byteLength }): IoOp => ({ kind: 'read', byteOffset, byteLength }));
  const discard = range.map(({ byteOffset, byteLength }): IoOp => ({ kind: 'discard', byteOffset, byteLength }));
  const flush = fc.constant<IoOp>({ kind: 'flush' });
  const ops = [
    { arbitrary: write, weight: 5 },
    { arbitrary: read, weight: 3 },
    { arbitrary: flush, weight: 1 },
    ...(options.discard === false ? [] : [{ arbitrary: discard, weight: 1 }]),
  ];
  return fc.array(fc.oneof(...ops), { maxLength: options.maxOps ?? 50 });
}

/** The trivially correct model of a block device: a flat byte array. */
export class BytesModel {
  readonly bytes: Uint8Array;

  constructor(byteLength: number) {
    this.bytes = new Uint8Array(byteLength);
  }

  /** Applies a mutating op (reads and flushes change nothing). */
  apply(op: IoOp): void {
    if (op.kind === 'write') this.bytes.set(op.data, op.byteOffset);
    else if (op.kind === 'discard') this.bytes.fill(0, op.byteOffset, op.byteOffset + op.byteLength);
  }

  /** What a read of the range must return. */
  read(byteOffset: number, byteLength: number): Uint8Array {
    return this.bytes.slice(byteOffset, byteOffset + byteLength);
  }
}

/**
 * Runs `ops` against `device` and the model side by side and returns the first read
 * whose bytes differ from the model (undefined when all agree).
 */
export async function runIoWorkload(
  device: BlockDevice,
  ops: readonly IoOp[],
  model: BytesModel = new BytesModel(device.byteLength),
): Promise<{ opIndex: number; byteOffset: number } | undefined> {
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    switch (op.kind) {
      case 'write':
        await device.write(op.byteOffset, op.data);
        break;
      case 'discard':
        await device.discard(op.byteOffset, op.byteLength);
        break;
      case 'flush':
        await device.flush();
        break;
      case 'read': {
        const got = await device.read(op.byteOffset, op.byteLength);
        const want = model.read(op.byteOffset, op.byteLength);
        for (let j = 0; j < want.length; j++) {
          if (got[j] !== want[j]) return { opIndex: i, byteOffset: op.byteOffset + j };
        }
        break;
      }
    }
    model.apply(op);
  }
  return undefined;
}
