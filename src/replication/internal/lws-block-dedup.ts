/**
 * Source side of NearSync's whole-block deduplication: a write record of the log that
 * covers whole blocks of its volume is cut into per-block fingerprints (the tree's
 * Fingerprinter, the key of its ExtentStore; all-zero blocks are holes) when its batch is
 * formed, and finished once the target answered which fingerprints it holds: a held block
 * ships as a reference, a lacking one as data (compressed when it pays) at its first
 * occurrence in the batch and as a reference after it (the target resolves it from that
 * data, lws-journal.ts).
 */
import { Buffer } from 'node:buffer';
import { toHex } from '../../core/bytes.js';
import type { ExtentCodec } from '../../dedup/codec.js';
import type { Fingerprinter } from '../../dedup/fingerprint.js';
import { blockFingerprintsOf } from '../../snapshot/internal/block-fingerprints.js';
import type { LwsBlock, LwsRecord } from './lws-messages.js';

/** A whole-block write whose blocks are fingerprinted but not yet encoded. */
export interface WholeBlocks {
  readonly kind: 'whole';
  readonly seq: number;
  readonly volumeId: string;
  readonly byteOffset: number;
  readonly blockBytes: number;
  readonly digestBytes: number;
  readonly data: Uint8Array;
  /** Per block: its fingerprint, or undefined for an all-zero block (a hole). */
  readonly fingerprints: readonly (Uint8Array | undefined)[];
  /** Encoded bytes if every non-hole block shipped raw: what the batch bound counts. */
  readonly maxBytes: number;
}

/** A record of a batch being formed. */
export type PendingRecord = LwsRecord | WholeBlocks;

/** Bytes of a whole-block record besides its blocks and volume id (kind, seq, id length, offset, blockBytes, digestBytes, count). */
const BLOCKS_HEADER_BYTES = 1 + 8 + 1 + 8 + 4 + 1 + 4;

/** Bytes of one data block besides the fingerprint and data (tag, codec, dataLength). */
const DATA_BLOCK_HEADER_BYTES = 1 + 1 + 4;

/**
 * The write as whole blocks, or undefined when it does not cover whole blocks of a
 * volume of `blockBytes` (it then ships as an exact byte range).
 */
export function cutWholeBlocks(e: { seq: number; volumeId: string; byteOffset: number; data: Uint8Array }, blockBytes: number, fingerprinter: Fingerprinter): WholeBlocks | undefined {
  const n = e.data.length / blockBytes;
  if (e.data.length === 0 || e.byteOffset % blockBytes !== 0 || !Number.isInteger(n)) return undefined;
  // Shared with the drain of the same record when it is still pending (the same data view).
  const fingerprints = blockFingerprintsOf(e.data, blockBytes, fingerprinter);
  let maxBytes = BLOCKS_HEADER_BYTES + Buffer.byteLength(e.volumeId);
  for (const f of fingerprints) maxBytes += f === undefined ? 1 : DATA_BLOCK_HEADER_BYTES + fingerprinter.digestBytes + blockBytes;
  return { kind: 'whole', seq: e.seq, volumeId: e.volumeId, byteOffset: e.byteOffset, blockBytes, digestBytes: fingerprinter.digestBytes, data: e.data, fingerprints, maxBytes };
}

/** The distinct fingerprints of a batch's whole-block records, in first-seen order (what LWS_HAVE_REQ asks). */
export function uniqueFingerprints(batch: readonly PendingRecord[]): Uint8Array[] {
  const seen = new Map<string, Uint8Array>();
  for (const r of batch) {
    if (r.kind !== 'whole') continue;
    for (const f of r.fingerprints) if (f !== undefined) seen.set(toHex(f), f);
  }
  return [...seen.values()];
}

/** Wire bytes of an LWS_HAVE_REQ for `fingerprints` and of its answer (payloads; 0 when none is asked). */
export function haveQueryBytes(fingerprints: readonly Uint8Array[], sessionIdBytes: number): number {
  if (fingerprints.length === 0) return 0;
  const n = fingerprints.length;
  return 4 + 1 + sessionIdBytes + 1 + 4 + n * fingerprints[0]!.length + 4 + 4 + ((n + 7) >> 3);
}

/**
 * The batch's records to send, given which of `fingerprints` (uniqueFingerprints of the
 * batch) the target holds (`held`, in the same order).
 * @returns the records, and how many blocks ship without their data (references and holes)
 */
export function finishBatch(batch: readonly PendingRecord[], fingerprints: readonly Uint8Array[], held: readonly boolean[], codec: ExtentCodec): { records: LwsRecord[]; dedupedBlocks: number } {
  /** Per fingerprint: true once the target has it, or will have it from this batch's data. */
  const known = new Map<string, boolean>();
  fingerprints.forEach((f, i) => known.set(toHex(f), held[i] === true));
  let dedupedBlocks = 0;
  const records = batch.map((r): LwsRecord => {
    if (r.kind !== 'whole') return r;
    const blocks = r.fingerprints.map((fingerprint, i): LwsBlock => {
      if (fingerprint === undefined) {
        dedupedBlocks++;
        return { kind: 'hole' };
      }
      const k = toHex(fingerprint);
      if (known.get(k) === true) {
        dedupedBlocks++;
        return { kind: 'ref', fingerprint };
      }
      known.set(k, true);
      const enc = codec.compress(r.data.subarray(i * r.blockBytes, (i + 1) * r.blockBytes));
      return { kind: 'data', fingerprint, codec: enc.codec, data: enc.bytes };
    });
    return { kind: 'blocks', seq: r.seq, volumeId: r.volumeId, byteOffset: r.byteOffset, blockBytes: r.blockBytes, digestBytes: r.digestBytes, blocks };
  });
  return { records, dedupedBlocks };
}
