/**
 * Per-block fingerprints of a logged whole-block write, computed once by whichever asks
 * first: the NearSync shipper (cutting the record into blocks) or the log's drain
 * (storing the blocks). Memoized by the identity of the write's data view, which the log
 * never changes after encoding (write-log.ts), and by fingerprint algorithm, so a memo is
 * only ever reused for the very bytes and the very function it was computed with.
 */
import type { Fingerprinter } from '../../dedup/fingerprint.js';
import { isAllZero } from './zero.js';

/** Per block of a whole-block write: its fingerprint, or undefined for an all-zero block. */
export type BlockFingerprints = readonly (Uint8Array | undefined)[];

interface Memo {
  readonly algorithm: string;
  readonly blockBytes: number;
  readonly fingerprints: BlockFingerprints;
}

const memos = new WeakMap<Uint8Array, Memo>();

/**
 * The fingerprints of `data`'s blocks of `blockBytes` (its length is a multiple of it),
 * computed at the first call for this data view and remembered while the view lives.
 */
export function blockFingerprintsOf(data: Uint8Array, blockBytes: number, fingerprinter: Fingerprinter): BlockFingerprints {
  const memo = memos.get(data);
  if (memo !== undefined && memo.blockBytes === blockBytes && memo.algorithm === fingerprinter.algorithm) return memo.fingerprints;
  const fingerprints: (Uint8Array | undefined)[] = [];
  for (let at = 0; at < data.byteLength; at += blockBytes) {
    const block = data.subarray(at, at + blockBytes);
    fingerprints.push(isAllZero(block) ? undefined : fingerprinter.fingerprint(block));
  }
  memos.set(data, { algorithm: fingerprinter.algorithm, blockBytes, fingerprints });
  return fingerprints;
}

/** The remembered fingerprint of block `index` of `data`, or undefined when none was computed (or it is all zero). */
export function knownBlockFingerprint(data: Uint8Array, blockBytes: number, fingerprinter: Fingerprinter, index: number): Uint8Array | undefined {
  const memo = memos.get(data);
  if (memo === undefined || memo.blockBytes !== blockBytes || memo.algorithm !== fingerprinter.algorithm) return undefined;
  return memo.fingerprints[index];
}
