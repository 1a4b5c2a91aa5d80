/**
 * The whole-block record of an LWS_BATCH (kind 2, docs/protocol.md §10): a write of the
 * log that covers whole blocks of its volume, shipped as one entry per block — a hole
 * (all zero), a reference to a fingerprint the target said it holds (LWS_HAVE_RES), or
 * the block's data (compressed) with its fingerprint, which the target verifies.
 *
 * Layout after kind u8 = 2: seq u64, volumeId (u8 length + UTF-8), byteOffset u64,
 * blockBytes u32 (a power of two in [MIN_BLOCK_BYTES, MAX_BLOCK_BYTES]), digestBytes u8
 * (1-64), count u32 (1..MAX_LWS_WRITE_BYTES / blockBytes), then per block: tag u8 —
 * 0 hole; 1 ref: fingerprint; 2 data: fingerprint, codec u8, dataLength u32, data
 * (raw: exactly blockBytes; compressed: at most blockBytes + 1024).
 */
import { DrkitError } from '../../core/errors.js';
import { CODEC_RAW, MAX_CODEC_RAW_BYTES, isCodecId } from '../../dedup/index.js';
import { MAX_BLOCK_BYTES, MIN_BLOCK_BYTES } from '../../snapshot/index.js';
import type { ByteCursor } from './byte-cursor.js';
import { ByteWriter } from './byte-cursor.js';

/** The record kind byte of a whole-block record in an LWS_BATCH. */
export const LWS_BLOCKS_KIND = 2;

/** Largest fingerprint (the Fingerprinter contract: 1-64 bytes). */
export const MAX_LWS_DIGEST_BYTES = 64;

/** Compressed block data may exceed the block by this much (codec framing), no more. */
const MAX_BLOCK_EXPANSION_BYTES = 1024;

/** One block of a whole-block record. */
export type LwsBlock =
  | { readonly kind: 'hole' }
  | { readonly kind: 'ref'; readonly fingerprint: Uint8Array }
  | { readonly kind: 'data'; readonly fingerprint: Uint8Array; readonly codec: number; readonly data: Uint8Array };

/** A write of whole blocks, one entry per block (see the file header). */
export interface LwsBlocksRecord {
  readonly kind: 'blocks';
  readonly seq: number;
  readonly volumeId: string;
  readonly byteOffset: number;
  readonly blockBytes: number;
  /** Length of every fingerprint of the record (the trees' Fingerprinter). */
  readonly digestBytes: number;
  readonly blocks: readonly LwsBlock[];
}

/** Encoded bytes of the record, its volume id already encoded (`volumeIdBytes`). */
export function lwsBlocksByteLength(r: LwsBlocksRecord, volumeIdBytes: number): number {
  let n = 1 + 8 + 1 + volumeIdBytes + 8 + 4 + 1 + 4;
  for (const b of r.blocks) n += b.kind === 'hole' ? 1 : b.kind === 'ref' ? 1 + r.digestBytes : 1 + r.digestBytes + 1 + 4 + b.data.length;
  return n;
}

/**
 * Encodes the record (its bounds checked by `bad`, which throws).
 * @returns the parts to send, in order
 */
export function encodeLwsBlocks(r: LwsBlocksRecord, volumeId: Uint8Array, bad: (msg: string) => never): Uint8Array[] {
  if (!Number.isSafeInteger(r.byteOffset) || r.byteOffset < 0) bad('byteOffset must be a safe integer');
  checkGeometry(r.blockBytes, r.blocks.length, r.digestBytes, bad);
  const head = new ByteWriter(1 + 8 + 1 + volumeId.length + 8 + 4 + 1 + 4)
    .u8(LWS_BLOCKS_KIND).u64(r.seq).u8(volumeId.length).raw(volumeId).u64(r.byteOffset).u32(r.blockBytes).u8(r.digestBytes).u32(r.blocks.length);
  const parts: Uint8Array[] = [head.bytes];
  for (const b of r.blocks) {
    if (b.kind === 'hole') {
      parts.push(TAG_HOLE);
      continue;
    }
    if (b.fingerprint.length !== r.digestBytes) bad(`a fingerprint of ${b.fingerprint.length} bytes in a record of ${r.digestBytes}-byte fingerprints`);
    if (b.kind === 'ref') {
      parts.push(TAG_REF, b.fingerprint);
      continue;
    }
    if (!isCodecId(b.codec)) bad(`unknown codec ${b.codec}`);
    if (b.codec === CODEC_RAW ? b.data.length !== r.blockBytes : b.data.length > r.blockBytes + MAX_BLOCK_EXPANSION_BYTES) bad('block data does not fit blockBytes');
    parts.push(TAG_DATA, b.fingerprint, new ByteWriter(5).u8(b.codec).u32(b.data.length).bytes, b.data);
  }
  return parts;
}

/** Decodes the record after its kind byte and seq (read by the caller). @throws PROTOCOL_ERROR */
export function decodeLwsBlocks(c: ByteCursor, seq: number, volumeId: string, index: number): LwsBlocksRecord {
  const fail = (msg: string): never => c.fail(`record ${index}: ${msg}`);
  const byteOffset = c.safeU64('byteOffset');
  const blockBytes = c.u32('blockBytes');
  const digestBytes = c.u8('digestBytes');
  const count = c.u32('blocks');
  checkGeometry(blockBytes, count, digestBytes, fail);
  const blocks: LwsBlock[] = [];
  for (let i = 0; i < count; i++) {
    const tag = c.u8('tag');
    if (tag === 0) blocks.push(HOLE);
    else if (tag === 1) blocks.push({ kind: 'ref', fingerprint: c.bytes(digestBytes, 'fingerprint') });
    else if (tag === 2) {
      const fingerprint = c.bytes(digestBytes, 'fingerprint');
      const codec = c.u8('codec');
      if (!isCodecId(codec)) fail(`block ${i}: unknown codec ${codec}`);
      const dataLength = c.u32('dataLength');
      if (codec === CODEC_RAW ? dataLength !== blockBytes : dataLength > blockBytes + MAX_BLOCK_EXPANSION_BYTES) fail(`block ${i}: dataLength ${dataLength} does not fit blockBytes ${blockBytes}`);
      blocks.push({ kind: 'data', fingerprint, codec, data: c.bytes(dataLength, 'data') });
    } else fail(`block ${i}: unknown tag ${tag}`);
  }
  return { kind: 'blocks', seq, volumeId, byteOffset, blockBytes, digestBytes, blocks };
}

function checkGeometry(blockBytes: number, count: number, digestBytes: number, bad: (msg: string) => never): void {
  if (blockBytes < MIN_BLOCK_BYTES || blockBytes > MAX_BLOCK_BYTES || (blockBytes & (blockBytes - 1)) !== 0) bad(`blockBytes ${blockBytes} is not a power of two in [${MIN_BLOCK_BYTES}, ${MAX_BLOCK_BYTES}]`);
  if (count === 0 || count * blockBytes > MAX_CODEC_RAW_BYTES) bad(`${count} blocks of ${blockBytes} bytes: 1..${MAX_CODEC_RAW_BYTES / blockBytes} allowed`);
  if (digestBytes === 0 || digestBytes > MAX_LWS_DIGEST_BYTES) bad(`digestBytes ${digestBytes} out of 1..${MAX_LWS_DIGEST_BYTES}`);
}

const TAG_HOLE = Uint8Array.of(0);
const TAG_REF = Uint8Array.of(1);
const TAG_DATA = Uint8Array.of(2);
const HOLE: LwsBlock = Object.freeze({ kind: 'hole' });

/** DrkitError for a block whose data does not have its fingerprint (the target's check). */
export function blockFingerprintMismatch(seq: number, block: number): DrkitError {
  return new DrkitError('CORRUPTION', `LWS record ${seq}: block ${block} does not match its fingerprint`, { data: { seq, block } });
}
