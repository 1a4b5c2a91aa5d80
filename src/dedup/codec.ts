/**
 * The extent codec: how extent bytes travel on the wire and rest in a store.
 *
 * Format (versioned by the codec id, carried beside the bytes with the raw length):
 * - codec 0 (raw): the extent's bytes, unchanged;
 * - codec 1 (lz4): an lz4 *block* (not frame) preceded by the raw length as a uint32
 *   little-endian (lz4_flex's `compress_prepend_size`, what lz4-napi's `compressSync`
 *   emits). The prefix duplicates the caller's rawLength on purpose: it is checked
 *   against it before anything is allocated.
 *
 * Fault model: decompression never trusts its input. A raw length above
 * {@link MAX_CODEC_RAW_BYTES}, a prefix that disagrees with rawLength, a malformed or
 * truncated lz4 stream, or an output of the wrong length is `CORRUPTION` — never a crash
 * and never an allocation sized by the input. lz4 has no checksum of its own: a flipped
 * literal byte can decode to wrong bytes of the right length. Integrity is the extent
 * checksum's job (xxh64) and identity the fingerprint's, both verified by the caller.
 *
 * lz4-napi is a native addon; it is loaded lazily by {@link ExtentCodec.open} so that
 * importing drkit/dedup never loads native code (and works where no prebuilt binary
 * exists, until a codec is actually opened).
 */
import { DrkitError } from '../core/errors.js';
import { assertBytes, assertNonNegativeInteger } from '../core/validate.js';

/** Codec id of an extent stored or sent as is. */
export const CODEC_RAW = 0;
/** Codec id of an lz4 block with a uint32 LE raw-length prefix. */
export const CODEC_LZ4 = 1;
/** A codec id: {@link CODEC_RAW} or {@link CODEC_LZ4}. */
export type CodecId = typeof CODEC_RAW | typeof CODEC_LZ4;

/**
 * Largest extent the codec accepts, both ways (4 MiB). Four times the largest block a
 * volume can have (1 MiB), so any extent fits; small enough that a hostile rawLength
 * cannot make a receiver allocate much.
 */
export const MAX_CODEC_RAW_BYTES = 4 * 1024 * 1024;

/**
 * Default {@link ExtentCodecOptions.maxCompressedFraction}: keep lz4 only when it saves
 * at least 10%. Below that the saving on the wire is smaller than the cost it adds:
 * every later read at the target pays a decompression, and incompressible data (which
 * lz4 grows by ~0.4%) is detected here instead of being shipped and stored compressed.
 */
export const DEFAULT_MAX_COMPRESSED_FRACTION = 0.9;

/** Bytes of the raw-length prefix of a codec-1 payload. */
const LZ4_PREFIX_BYTES = 4;

/** An encoded extent: the codec used and the bytes to send or store. */
export interface EncodedExtent {
  /** {@link CODEC_RAW} when compression did not pay, else {@link CODEC_LZ4}. */
  readonly codec: CodecId;
  /** The payload; for {@link CODEC_RAW} this is the input itself (not a copy). */
  readonly bytes: Uint8Array;
}

/** Options of {@link ExtentCodec.open}. */
export interface ExtentCodecOptions {
  /**
   * Compressed output larger than this fraction of the raw length is discarded and the
   * extent passes through raw. In (0, 1].
   * @defaultValue 0.9 ({@link DEFAULT_MAX_COMPRESSED_FRACTION})
   */
  maxCompressedFraction?: number;
}

/** The two synchronous functions drkit uses from lz4-napi. */
interface Lz4Binding {
  compressSync(data: Buffer): Buffer;
  uncompressSync(data: Buffer): Buffer;
}

let loadingLz4: Promise<Lz4Binding> | undefined;

/** Loads lz4-napi once per process; a missing native binary becomes NOT_SUPPORTED. */
function loadLz4(): Promise<Lz4Binding> {
  loadingLz4 ??= import('lz4-napi').then(
    (mod) => {
      // CommonJS module: named exports or the default export, depending on the loader.
      const api = ((mod as { compressSync?: unknown }).compressSync ? mod : (mod as { default: unknown }).default) as Lz4Binding;
      return api;
    },
    (err: unknown) => {
      loadingLz4 = undefined;
      throw new DrkitError('NOT_SUPPORTED', `lz4-napi could not be loaded on ${process.platform}-${process.arch}: ${(err as Error)?.message ?? String(err)}`, {
        cause: err,
        data: { platform: process.platform, arch: process.arch },
      });
    },
  );
  return loadingLz4;
}

/** A zero-copy Buffer view of `data`, as lz4-napi's typings ask for. */
function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Compresses extents with lz4 (block format) and passes them through raw when that does
 * not pay. Synchronous once opened; for parallelism see `CodecPool`.
 */
export class ExtentCodec {
  /** The fraction above which compressed output is discarded (see options). */
  readonly maxCompressedFraction: number;
  readonly #lz4: Lz4Binding;

  private constructor(lz4: Lz4Binding, maxCompressedFraction: number) {
    this.#lz4 = lz4;
    this.maxCompressedFraction = maxCompressedFraction;
  }

  /**
   * Loads lz4-napi (once per process) and returns a codec.
   * @throws INVALID_ARGUMENT for a bad option; NOT_SUPPORTED when the native lz4 binding
   * cannot be loaded on this platform
   */
  static async open(options: ExtentCodecOptions = {}): Promise<ExtentCodec> {
    const fraction = options.maxCompressedFraction ?? DEFAULT_MAX_COMPRESSED_FRACTION;
    if (typeof fraction !== 'number' || !(fraction > 0 && fraction <= 1)) {
      throw new DrkitError('INVALID_ARGUMENT', `maxCompressedFraction must be in (0, 1], got ${String(fraction)}`, {
        data: { maxCompressedFraction: String(fraction) },
      });
    }
    return new ExtentCodec(await loadLz4(), fraction);
  }

  /**
   * Encodes one extent: lz4 when the output is at most `maxCompressedFraction` of the
   * input, else the input itself with codec 0. Empty input is always raw.
   * @throws INVALID_ARGUMENT when `data` is not a Uint8Array or exceeds {@link MAX_CODEC_RAW_BYTES}
   */
  compress(data: Uint8Array): EncodedExtent {
    assertBytes(data, 'data');
    if (data.byteLength > MAX_CODEC_RAW_BYTES) {
      throw new DrkitError('INVALID_ARGUMENT', `extent of ${data.byteLength} bytes exceeds the codec limit of ${MAX_CODEC_RAW_BYTES}`, {
        data: { byteLength: data.byteLength, maxBytes: MAX_CODEC_RAW_BYTES },
      });
    }
    if (data.byteLength === 0) return { codec: CODEC_RAW, bytes: data };
    const out = this.#lz4.compressSync(asBuffer(data));
    if (out.byteLength > data.byteLength * this.maxCompressedFraction) return { codec: CODEC_RAW, bytes: data };
    return { codec: CODEC_LZ4, bytes: new Uint8Array(out.buffer, out.byteOffset, out.byteLength) };
  }

  /**
   * Decodes one extent and checks that it is exactly `rawLength` bytes long. For codec 0
   * the result is `bytes` itself.
   * @throws INVALID_ARGUMENT for an unknown codec id or a non-integer rawLength;
   * CORRUPTION when rawLength exceeds {@link MAX_CODEC_RAW_BYTES}, disagrees with the
   * payload, or the lz4 stream is malformed or truncated
   */
  decompress(codec: CodecId, bytes: Uint8Array, rawLength: number): Uint8Array {
    assertBytes(bytes, 'bytes');
    assertNonNegativeInteger(rawLength, 'rawLength');
    if (rawLength > MAX_CODEC_RAW_BYTES) {
      throw corruption(`rawLength ${rawLength} exceeds the codec limit of ${MAX_CODEC_RAW_BYTES}`, { codec, rawLength });
    }
    if (codec === CODEC_RAW) {
      if (bytes.byteLength !== rawLength) {
        throw corruption(`raw extent is ${bytes.byteLength} bytes, expected ${rawLength}`, { codec, rawLength, byteLength: bytes.byteLength });
      }
      return bytes;
    }
    if (codec !== CODEC_LZ4) {
      throw new DrkitError('INVALID_ARGUMENT', `unknown codec id ${String(codec)}`, { data: { codec: String(codec) } });
    }
    if (bytes.byteLength <= LZ4_PREFIX_BYTES) {
      throw corruption(`lz4 payload of ${bytes.byteLength} bytes is too short`, { codec, rawLength, byteLength: bytes.byteLength });
    }
    // lz4_flex sizes its output buffer from the prefix: check it before the native call.
    const prefix = new DataView(bytes.buffer, bytes.byteOffset, LZ4_PREFIX_BYTES).getUint32(0, true);
    if (prefix !== rawLength) {
      throw corruption(`lz4 payload declares ${prefix} bytes, expected ${rawLength}`, { codec, rawLength, declaredBytes: prefix });
    }
    let out: Buffer;
    try {
      out = this.#lz4.uncompressSync(asBuffer(bytes));
    } catch (err) {
      throw corruption(`malformed lz4 payload: ${(err as Error)?.message ?? String(err)}`, { codec, rawLength, byteLength: bytes.byteLength }, err);
    }
    if (out.byteLength !== rawLength) {
      throw corruption(`lz4 payload decoded to ${out.byteLength} bytes, expected ${rawLength}`, { codec, rawLength, decodedBytes: out.byteLength });
    }
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }
}

function corruption(message: string, data: Record<string, unknown>, cause?: unknown): DrkitError {
  return new DrkitError('CORRUPTION', message, { data, cause });
}
