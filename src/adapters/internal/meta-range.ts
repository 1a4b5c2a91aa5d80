/** Validation and normalisation of {@link MetaRange} for the MetaStore implementations. */
import { DrkitError } from '../../core/errors.js';
import { bytesToKey } from '../../core/bytes.js';
import { assertBytes } from '../../core/validate.js';
import type { MetaRange } from '../meta-store.js';
import type { KeyRange } from './ordered-map.js';

/** A validated range: string bounds (at most one lower, one upper), direction and limit. */
export interface NormalizedRange {
  readonly keyRange: KeyRange;
  /** Entries to yield at most; Infinity when unlimited. */
  readonly limit: number;
  /** True when the bounds exclude every key, so iteration can skip the tree. */
  readonly empty: boolean;
}

/**
 * The smallest binary string greater than every string that starts with `prefix`, or
 * undefined when there is none (the prefix is empty or all 0xff).
 */
export function prefixUpperBound(prefix: string): string | undefined {
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === 0xff) end--;
  if (end === 0) return undefined;
  return prefix.slice(0, end - 1) + String.fromCharCode(prefix.charCodeAt(end - 1) + 1);
}

/**
 * Validates `range` and folds `prefix`, `gt`/`gte` and `lt`/`lte` into one lower and one
 * upper bound.
 * @throws INVALID_ARGUMENT for a non-object range, non-Uint8Array bounds or a bad limit
 */
export function normalizeRange(range: MetaRange | undefined): NormalizedRange {
  if (range === undefined) return { keyRange: {}, limit: Infinity, empty: false };
  if (typeof range !== 'object' || range === null) {
    throw new DrkitError('INVALID_ARGUMENT', 'range must be an object', { data: { name: 'range' } });
  }
  const bound = (name: 'gt' | 'gte' | 'lt' | 'lte' | 'prefix'): string | undefined => {
    const value = range[name];
    if (value === undefined) return undefined;
    assertBytes(value, `range.${name}`);
    return bytesToKey(value);
  };
  const gt = bound('gt');
  const gte = bound('gte');
  const lt = bound('lt');
  const lte = bound('lte');
  const prefix = bound('prefix');
  let limit = Infinity;
  if (range.limit !== undefined) {
    if (typeof range.limit !== 'number' || !(Number.isSafeInteger(range.limit) || range.limit === Infinity) || range.limit < 0) {
      throw new DrkitError('INVALID_ARGUMENT', `range.limit must be a non-negative integer, got ${String(range.limit)}`, {
        data: { name: 'range.limit' },
      });
    }
    limit = range.limit;
  }
  if (range.reverse !== undefined && typeof range.reverse !== 'boolean') {
    throw new DrkitError('INVALID_ARGUMENT', 'range.reverse must be a boolean', { data: { name: 'range.reverse' } });
  }

  // Lower bound: the greatest of the candidates (on a tie, exclusive beats inclusive).
  let low: { key: string; strict: boolean } | undefined;
  const raiseLow = (key: string | undefined, strict: boolean): void => {
    if (key === undefined) return;
    if (low === undefined || key > low.key || (key === low.key && strict)) low = { key, strict };
  };
  raiseLow(gte, false);
  raiseLow(gt, true);
  raiseLow(prefix, false);
  let high: { key: string; strict: boolean } | undefined;
  const lowerHigh = (key: string | undefined, strict: boolean): void => {
    if (key === undefined) return;
    if (high === undefined || key < high.key || (key === high.key && strict)) high = { key, strict };
  };
  lowerHigh(lte, false);
  lowerHigh(lt, true);
  if (prefix !== undefined) lowerHigh(prefixUpperBound(prefix), true);

  const keyRange: KeyRange = { reverse: range.reverse === true };
  if (low !== undefined) keyRange[low.strict ? 'gt' : 'gte'] = low.key;
  if (high !== undefined) keyRange[high.strict ? 'lt' : 'lte'] = high.key;
  const empty =
    limit === 0 ||
    (low !== undefined && high !== undefined && (low.key > high.key || (low.key === high.key && (low.strict || high.strict))));
  return { keyRange, limit, empty };
}
