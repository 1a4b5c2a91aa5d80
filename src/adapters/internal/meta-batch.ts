/** Validation of MetaStore batches, shared by every MetaStore implementation. */
import { bytesToKey } from '../../core/bytes.js';
import { DrkitError } from '../../core/errors.js';
import type { MetaOp } from '../meta-store.js';

/**
 * Largest key, in bytes. Keys are held in memory, compared on every lookup and
 * repeated in every log record; metadata keys are tens of bytes, so 64 KiB only
 * stops mistakes (a value passed as a key).
 */
export const MAX_KEY_BYTES = 64 * 1024;

/**
 * Largest batch, in bytes of keys + values (plus {@link OP_OVERHEAD_BYTES} per op). A
 * batch is one log record that is buffered whole in memory and must be readable whole
 * at recovery; 64 MiB bounds that buffer while exceeding any sane metadata commit.
 */
export const MAX_BATCH_BYTES = 64 * 1024 * 1024;

/** Bytes a batch op costs beyond its key and value (its encoded header). */
export const OP_OVERHEAD_BYTES = 9;

/**
 * Asserts that `key` is a Uint8Array of at most `maxKeyBytes` bytes. `label` names it in
 * the message (`key`, `ops[3].key`); `data` is merged into the error's data.
 * @throws INVALID_ARGUMENT
 */
export function assertKey(key: unknown, label: string, maxKeyBytes: number = MAX_KEY_BYTES, data: Record<string, unknown> = {}): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array)) {
    throw new DrkitError('INVALID_ARGUMENT', `${label} must be a Uint8Array`, { data: { name: 'key', ...data } });
  }
  if (key.length > maxKeyBytes) {
    throw new DrkitError('INVALID_ARGUMENT', `${label} is ${key.length} bytes; the bound is ${maxKeyBytes}`, {
      data: { name: 'key', ...data, byteLength: key.length, limitBytes: maxKeyBytes },
    });
  }
}

/**
 * Validates `ops` and returns their encoded size (keys + values + per-op overhead).
 * `maxKeyBytes` lets a store whose medium holds shorter keys (LMDB) refuse them here,
 * before any op is applied.
 * @throws INVALID_ARGUMENT for a non-array, an unknown op kind, non-Uint8Array keys or
 * values, a key over `maxKeyBytes` or a batch over {@link MAX_BATCH_BYTES}
 */
export function validateBatch(ops: readonly MetaOp[], maxKeyBytes: number = MAX_KEY_BYTES): number {
  if (!Array.isArray(ops)) throw new DrkitError('INVALID_ARGUMENT', 'ops must be an array', { data: { name: 'ops' } });
  let byteLength = 0;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as MetaOp | undefined;
    if (typeof op !== 'object' || op === null) {
      throw new DrkitError('INVALID_ARGUMENT', `ops[${i}] must be an object`, { data: { name: 'ops', index: i } });
    }
    assertKey(op.key, `ops[${i}].key`, maxKeyBytes, { index: i });
    byteLength += OP_OVERHEAD_BYTES + op.key.length;
    if (op.kind === 'put') {
      if (!(op.value instanceof Uint8Array)) {
        throw new DrkitError('INVALID_ARGUMENT', `ops[${i}].value must be a Uint8Array`, { data: { name: 'value', index: i } });
      }
      byteLength += op.value.length;
    } else if (op.kind !== 'del') {
      throw new DrkitError('INVALID_ARGUMENT', `ops[${i}].kind must be 'put' or 'del'`, { data: { name: 'kind', index: i } });
    }
    const replaces = op.replaces;
    if (replaces !== undefined && replaces !== null && !(Number.isSafeInteger(replaces) && replaces >= 0)) {
      throw new DrkitError('INVALID_ARGUMENT', `ops[${i}].replaces must be a byte length (a non-negative integer) or null`, { data: { name: 'replaces', index: i, value: replaces } });
    }
    if (byteLength > MAX_BATCH_BYTES) {
      throw new DrkitError('INVALID_ARGUMENT', `batch exceeds ${MAX_BATCH_BYTES} bytes`, {
        data: { name: 'ops', limitBytes: MAX_BATCH_BYTES },
      });
    }
  }
  return byteLength;
}

/**
 * Checks every op's `replaces` hint (see {@link MetaOp}) against what the key holds after
 * the batch's earlier ops, before any op is applied: `valueBytes(key)` is the byte length
 * of the key's stored value (binary-string form, {@link bytesToKey}), or undefined. For
 * the stores that hold their data in memory, where the check costs a map lookup.
 * @throws INVALID_ARGUMENT naming the first op whose hint is wrong
 */
export function checkReplaces(ops: readonly MetaOp[], valueBytes: (key: string) => number | undefined): void {
  let last = ops.length - 1;
  while (last >= 0 && ops[last]!.replaces === undefined) last--;
  if (last < 0) return;
  // What the batch's earlier ops leave at a key, hinted or not (binary-string key -> length, null = none).
  const overlay = new Map<string, number | null>();
  for (let i = 0; i <= last; i++) {
    const op = ops[i]!;
    const key = bytesToKey(op.key);
    if (op.replaces !== undefined) {
      const actual = overlay.has(key) ? overlay.get(key)! : (valueBytes(key) ?? null);
      if (actual !== op.replaces) {
        throw new DrkitError('INVALID_ARGUMENT', `ops[${i}].replaces is ${op.replaces}, but the key holds ${actual === null ? 'no value' : `${actual} bytes`}`, {
          data: { name: 'replaces', index: i, replaces: op.replaces, actual },
        });
      }
    }
    overlay.set(key, op.kind === 'put' ? op.value.length : null);
  }
}
