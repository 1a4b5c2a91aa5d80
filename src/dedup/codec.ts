/**
 * The extent codec: how extent bytes travel on the wire and rest in a store.
 *
 * Format (versioned by the codec id, carried beside the bytes with the raw length):
 * - codec 0 (raw): the extent's bytes, unchanged;
 * - codec 1 (lz4): an lz4 *block* (not frame) preceded by the raw length as a uint32
 *   little-endian (lz4_flex's `compress_prepend_size`, what lz4-napi's `compressSync`
 *   emits). The prefix duplicates the caller's rawLength on purpose: it is checked
 *   against it before anything is allocated;
 * - codec 2 (zstd): one zstd frame (RFC 8878) at level {@link DEFAULT_ZSTD_LEVEL}, the
 *   default codec since 2026-12-02: on the standard workload's 16 KiB extents level -1
 *   saves 28.5% of the non-zero bytes at ~300-400 MB/s per core where lz4 saved 23.3% at
 *   ~170 MB/s (lz4-napi spends its time failing on incompressible data;
 *   docs/benchmarks.md, issue #13).
 *   Decoding writes into a buffer of exactly rawLength bytes (the caller's, bounded),
 *   never one sized by the frame's own header.
 *
 * Fault model: decompression never trusts its input. A raw length above
 * {@link MAX_CODEC_RAW_BYTES}, a prefix that disagrees with rawLength, a malformed or
 * truncated lz4 stream, or an output of the wrong length is `CORRUPTION` — never a crash
 * and never an allocation sized by the input. lz4 has no checksum of its own: a flipped
 * literal byte can decode to wrong bytes of the right length. Integrity is the extent
 * checksum's job (xxh64) and identity the fingerprint's, both verified by the caller.
 *
 * lz4-napi and zstd-napi are native addons; they are loaded lazily by
 * {@link ExtentCodec.open} so that importing drkit/dedup never loads native code. Where
 * zstd-napi has no binary, a codec opened without an explicit `compression` falls back to
 * lz4 (and decoding a zstd payload is NOT_SUPPORTED).
 */
import { DrkitError } from '../core/errors.js';
import { assertBytes, assertNonNegativeInteger } from '../core/validate.js';

/** Codec id of an extent stored or sent as is. */
export const CODEC_RAW = 0;
/** Codec id of an lz4 block with a uint32 LE raw-length prefix. */
export const CODEC_LZ4 = 1;
/** Codec id of one zstd frame. */
export const CODEC_ZSTD = 2;
/** A codec id: {@link CODEC_RAW}, {@link CODEC_LZ4} or {@link CODEC_ZSTD}. */
export type CodecId = typeof CODEC_RAW | typeof CODEC_LZ4 | typeof CODEC_ZSTD;

/** Whether `codec` is a codec id this build knows. */
export function isCodecId(codec: unknown): codec is CodecId {
  return codec === CODEC_RAW || codec === CODEC_LZ4 || codec === CODEC_ZSTD;
}

/**
 * Default zstd level: -1 (since 2026-12-03). Measured on the standard workload's 16 KiB
 * extents once incompressible input stopped failing through N-API (zstdCompressBound):
 * level -1 saved 28.5% at ~300-400 MB/s per core and decoded at ~950-1,550 MB/s, level 1
 * 30.0% at ~240 and ~800-850 (docs/benchmarks.md, issue #13). Compression is the
 * sender's largest stage of a full backup, and the 1.5% it gives back still leaves the
 * bytes at rest under the bound (restic's 651 MB for the 1 GiB image).
 */
export const DEFAULT_ZSTD_LEVEL = -1;

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

/** compressInto's answer when the extent is to travel as it is. */
const RAW_RESULT: { codec: CodecId; byteLength: number } = Object.freeze({ codec: CODEC_RAW, byteLength: 0 });

/**
 * zstd's worst-case output for `rawBytes` of input (ZSTD_COMPRESSBOUND of zstd.h): one
 * frame of raw blocks plus headers.
 */
export function zstdCompressBound(rawBytes: number): number {
  const KiB128 = 128 * 1024;
  return rawBytes + (rawBytes >>> 8) + (rawBytes < KiB128 ? (KiB128 - rawBytes) >>> 11 : 0);
}

/** Bytes of the raw-length prefix of a codec-1 payload. */
const LZ4_PREFIX_BYTES = 4;

/** An encoded extent: the codec used and the bytes to send or store. */
export interface EncodedExtent {
  /** {@link CODEC_RAW} when compression did not pay, else the codec used. */
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
  /**
   * The codec compress() uses. Decoding accepts every codec this build knows.
   * @defaultValue 'zstd' (falls back to 'lz4' where zstd-napi cannot be loaded)
   */
  compression?: 'zstd' | 'lz4';
  /** zstd level (-7..19), when compressing with zstd. @defaultValue -1 ({@link DEFAULT_ZSTD_LEVEL}) */
  zstdLevel?: number;
}

/** The two synchronous functions drkit uses from lz4-napi. */
interface Lz4Binding {
  compressSync(data: Buffer): Buffer;
  uncompressSync(data: Buffer): Buffer;
}

/** What drkit uses of zstd-napi: one-shot compression into the caller's buffer, and the raw decompression context. */
interface ZstdBinding {
  /** A compression context at `level`: `compress2(dst, src)` returns the bytes written, throws when dst is too small. */
  newCompressor(level: number): { compress2(dst: Uint8Array, src: Uint8Array): number };
  newDecoder(): { decompress(dst: Uint8Array, src: Uint8Array): number };
}

let loadingLz4: Promise<Lz4Binding> | undefined;
let loadingZstd: Promise<ZstdBinding> | undefined;

/** Loads zstd-napi once per process; a missing native binary becomes NOT_SUPPORTED. */
function loadZstd(): Promise<ZstdBinding> {
  // The binding's CCtx, not the package's Compressor: Compressor.compress returns a new
  // buffer per call, compress2 writes into the caller's (measured 2026-12-02 on the
  // standard workload's 16 KiB extents, same run: 415-465 against 457-471 MB/s per core;
  // the gain is the allocation, not the speed).
  loadingZstd ??= import('zstd-napi/binding.js').then(
    (bin) => {
      const binding = ((bin as { DCtx?: unknown }).DCtx ? bin : (bin as { default: unknown }).default) as {
        CCtx: new () => { setParameter(param: number, value: number): void; compress2(dst: Uint8Array, src: Uint8Array): number };
        DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number };
        CParameter: { compressionLevel: number };
      };
      return {
        newCompressor(level: number) {
          const c = new binding.CCtx();
          c.setParameter(binding.CParameter.compressionLevel, level);
          return c;
        },
        newDecoder: () => new binding.DCtx(),
      };
    },
    (err: unknown) => {
      loadingZstd = undefined;
      throw new DrkitError('NOT_SUPPORTED', `zstd-napi could not be loaded on ${process.platform}-${process.arch}: ${(err as Error)?.message ?? String(err)}`, {
        cause: err,
        data: { platform: process.platform, arch: process.arch },
      });
    },
  );
  return loadingZstd;
}

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
  /** The codec compress() uses ({@link CODEC_ZSTD} or {@link CODEC_LZ4}). */
  readonly compression: typeof CODEC_LZ4 | typeof CODEC_ZSTD;
  /** Whether zstd-napi loaded here, so codec 2 payloads can be decoded. */
  readonly decodesZstd: boolean;
  readonly #lz4: Lz4Binding;
  readonly #zstdCompressor: { compress2(dst: Uint8Array, src: Uint8Array): number } | undefined;
  /** compress()'s output space, reused: grown to the largest output a call could keep. */
  #scratch = new Uint8Array(0);
  readonly #zstdDecoder: { decompress(dst: Uint8Array, src: Uint8Array): number } | undefined;

  private constructor(lz4: Lz4Binding, zstd: ZstdBinding | undefined, zstdLevel: number, compress: 'zstd' | 'lz4', maxCompressedFraction: number) {
    this.#lz4 = lz4;
    this.#zstdCompressor = zstd?.newCompressor(zstdLevel);
    this.#zstdDecoder = zstd?.newDecoder();
    this.decodesZstd = zstd !== undefined;
    this.compression = compress === 'zstd' ? CODEC_ZSTD : CODEC_LZ4;
    this.maxCompressedFraction = maxCompressedFraction;
  }

  /**
   * Loads lz4-napi and zstd-napi (once per process) and returns a codec.
   * @throws INVALID_ARGUMENT for a bad option; NOT_SUPPORTED when the native lz4 binding
   * cannot be loaded on this platform, or zstd's when `compression: 'zstd'` was asked for
   */
  static async open(options: ExtentCodecOptions = {}): Promise<ExtentCodec> {
    const fraction = options.maxCompressedFraction ?? DEFAULT_MAX_COMPRESSED_FRACTION;
    if (typeof fraction !== 'number' || !(fraction > 0 && fraction <= 1)) {
      throw new DrkitError('INVALID_ARGUMENT', `maxCompressedFraction must be in (0, 1], got ${String(fraction)}`, {
        data: { maxCompressedFraction: String(fraction) },
      });
    }
    const level = options.zstdLevel ?? DEFAULT_ZSTD_LEVEL;
    if (!Number.isInteger(level) || level < -7 || level > 19) {
      throw new DrkitError('INVALID_ARGUMENT', `zstdLevel must be an integer in -7..19, got ${String(level)}`, { data: { zstdLevel: String(level) } });
    }
    if (options.compression !== undefined && options.compression !== 'zstd' && options.compression !== 'lz4') {
      throw new DrkitError('INVALID_ARGUMENT', `compression must be 'zstd' or 'lz4', got ${String(options.compression)}`);
    }
    const lz4 = await loadLz4();
    let zstd: ZstdBinding | undefined;
    try {
      zstd = await loadZstd();
    } catch (err) {
      if (options.compression === 'zstd') throw err;
    }
    const compress = options.compression ?? (zstd === undefined ? 'lz4' : 'zstd');
    return new ExtentCodec(lz4, zstd, level, compress, fraction);
  }

  /**
   * Encodes one extent: compressed when the output is at most `maxCompressedFraction` of
   * the input, else the input itself with codec 0. Empty input is always raw. The
   * compressed bytes are a buffer of their own (for bulk work without an allocation per
   * extent, see {@link ExtentCodec.compressInto}).
   * @throws INVALID_ARGUMENT when `data` is not a Uint8Array or exceeds {@link MAX_CODEC_RAW_BYTES}
   */
  compress(data: Uint8Array): EncodedExtent {
    this.maxOutputBytes(data); // validates data
    const room = zstdCompressBound(data.byteLength);
    if (this.#scratch.byteLength < room) this.#scratch = new Uint8Array(Math.max(room, 64 * 1024));
    const r = this.compressInto(data, this.#scratch);
    if (r.codec === CODEC_RAW) return { codec: CODEC_RAW, bytes: data };
    return { codec: r.codec, bytes: this.#scratch.slice(0, r.byteLength) };
  }

  /**
   * The most bytes a compressed form of `data` may take and still be kept: what
   * {@link ExtentCodec.compressInto} needs of `out` to be able to compress it.
   * @throws INVALID_ARGUMENT as {@link ExtentCodec.compress}
   */
  maxOutputBytes(data: Uint8Array): number {
    assertBytes(data, 'data');
    if (data.byteLength > MAX_CODEC_RAW_BYTES) {
      throw new DrkitError('INVALID_ARGUMENT', `extent of ${data.byteLength} bytes exceeds the codec limit of ${MAX_CODEC_RAW_BYTES}`, {
        data: { byteLength: data.byteLength, maxBytes: MAX_CODEC_RAW_BYTES },
      });
    }
    return Math.floor(data.byteLength * this.maxCompressedFraction);
  }

  /**
   * {@link ExtentCodec.compress} into the caller's `out` (e.g. the free tail of a frame
   * or an arena): returns the codec and the bytes written at the start of `out`, or
   * {@link CODEC_RAW} with 0 bytes when compression did not pay — or did not fit in
   * `out`, which is then the answer for an `out` shorter than
   * {@link ExtentCodec.maxOutputBytes}: the caller sends `data` itself.
   * zstd writes straight into `out`, using up to {@link zstdCompressBound} of it (give it
   * that much and incompressible data costs little: zstd stores it as raw blocks, and the
   * result over the limit is then dropped); lz4 compresses and copies.
   * @throws INVALID_ARGUMENT as {@link ExtentCodec.compress}, or when `out` is not a Uint8Array
   */
  compressInto(data: Uint8Array, out: Uint8Array): { codec: CodecId; byteLength: number } {
    const limit = this.maxOutputBytes(data);
    assertBytes(out, 'out');
    if (data.byteLength === 0 || Math.min(limit, out.byteLength) === 0) return RAW_RESULT;
    if (this.compression === CODEC_ZSTD) {
      // Room for zstd's worst case when `out` has it: on incompressible input zstd then
      // emits raw blocks at ~1.2 GB/s, where a room cut at the limit made it fail with
      // dstSize_tooSmall at about half that speed (an exception per extent; measured
      // 2026-12-02 on 16 KiB random extents: 1,251 against 674 MB/s per core).
      const room = out.subarray(0, Math.min(zstdCompressBound(data.byteLength), out.byteLength));
      let n: number;
      try {
        n = this.#zstdCompressor!.compress2(room, data);
      } catch (err) {
        // The only failure of a one-shot compression with valid buffers: the output
        // outgrew the room (zstd's dstSize_tooSmall). Anything else is a bug to surface.
        if (/too small/i.test((err as Error)?.message ?? '')) return RAW_RESULT;
        throw new DrkitError('INTERNAL', `zstd compression failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      }
      return n > limit ? RAW_RESULT : { codec: CODEC_ZSTD, byteLength: n };
    }
    const room = out.subarray(0, Math.min(limit, out.byteLength));
    const lz4 = this.#lz4.compressSync(asBuffer(data));
    if (lz4.byteLength > room.byteLength) return RAW_RESULT;
    room.set(lz4);
    return { codec: CODEC_LZ4, byteLength: lz4.byteLength };
  }

  /**
   * Decodes one extent and checks that it is exactly `rawLength` bytes long. For codec 0
   * the result is `bytes` itself.
   * @throws INVALID_ARGUMENT for an unknown codec id or a non-integer rawLength;
   * CORRUPTION when rawLength exceeds {@link MAX_CODEC_RAW_BYTES}, disagrees with the
   * payload, or the lz4 or zstd stream is malformed or truncated; NOT_SUPPORTED for a zstd
   * payload where zstd-napi could not be loaded
   */
  decompress(codec: CodecId | number, bytes: Uint8Array, rawLength: number): Uint8Array {
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
    if (codec === CODEC_ZSTD) return this.#decompressZstd(bytes, rawLength);
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

  /**
   * {@link ExtentCodec.decompress} into `out` (exactly `rawLength` bytes, a view the caller
   * owns, e.g. a slice of a reused buffer): zstd decodes in place, raw extents are copied,
   * lz4 is decoded and copied. Same checks and errors as decompress.
   * @throws INVALID_ARGUMENT also when `out` is not `rawLength` bytes long
   */
  decompressInto(codec: CodecId | number, bytes: Uint8Array, rawLength: number, out: Uint8Array): void {
    assertBytes(out, 'out');
    if (out.byteLength !== rawLength) {
      throw new DrkitError('INVALID_ARGUMENT', `decompressInto: out is ${out.byteLength} bytes, rawLength is ${rawLength}`, { data: { byteLength: out.byteLength, rawLength } });
    }
    if (codec === CODEC_ZSTD && rawLength <= MAX_CODEC_RAW_BYTES) {
      assertBytes(bytes, 'bytes');
      this.#decompressZstd(bytes, rawLength, out);
      return;
    }
    out.set(this.decompress(codec, bytes, rawLength));
  }

  /** Decodes into exactly rawLength bytes; a frame that would need more fails inside zstd (dstSize_tooSmall). */
  #decompressZstd(bytes: Uint8Array, rawLength: number, into?: Uint8Array): Uint8Array {
    if (this.#zstdDecoder === undefined) {
      throw new DrkitError('NOT_SUPPORTED', 'a zstd payload, and zstd-napi could not be loaded here', { data: { codec: CODEC_ZSTD } });
    }
    const out = into ?? new Uint8Array(rawLength);
    let n: number;
    try {
      n = this.#zstdDecoder.decompress(out, bytes);
    } catch (err) {
      throw corruption(`malformed zstd payload: ${(err as Error)?.message ?? String(err)}`, { codec: CODEC_ZSTD, rawLength, byteLength: bytes.byteLength }, err);
    }
    if (n !== rawLength) throw corruption(`zstd payload decoded to ${n} bytes, expected ${rawLength}`, { codec: CODEC_ZSTD, rawLength, decodedBytes: n });
    return out;
  }
}

function corruption(message: string, data: Record<string, unknown>, cause?: unknown): DrkitError {
  return new DrkitError('CORRUPTION', message, { data, cause });
}
