/**
 * drkit/dedup: content fingerprints and checksums.
 * @packageDocumentation
 */
export { sha256Fingerprinter, type Fingerprinter } from './fingerprint.js';
export { loadXxh64, type Xxh64 } from '../core/checksum.js';
export {
  ExtentCodec,
  CODEC_RAW,
  CODEC_LZ4,
  CODEC_ZSTD,
  DEFAULT_ZSTD_LEVEL,
  isCodecId,
  MAX_CODEC_RAW_BYTES,
  DEFAULT_MAX_COMPRESSED_FRACTION,
  type CodecId,
  type EncodedExtent,
  type ExtentCodecOptions,
} from './codec.js';
export {
  CodecPool,
  DEFAULT_CODEC_WORKERS,
  DEFAULT_MAX_PENDING_BATCHES,
  MAX_POOL_BATCH_BYTES,
  MAX_POOL_BATCH_EXTENTS,
  type CodecPoolOptions,
  type CodecBatchOptions,
  type EncodedExtentInput,
} from './codec-pool.js';
