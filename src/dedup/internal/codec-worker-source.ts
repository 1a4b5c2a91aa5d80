/**
 * Source of the CodecPool worker, run with `new Worker(source, { eval: true })`.
 *
 * Why a string and not a file: the pool must work from the TypeScript sources (tests),
 * from the bundled ESM and CJS builds (whose chunk layout moves files around) and from a
 * user's node_modules; an eval'd script has no path to get wrong. The only modules it
 * needs by path, lz4-napi and zstd-napi, are resolved by the parent and passed as file
 * URLs in `workerData`.
 *
 * Why only dynamic `import()`: an eval'd worker runs as CommonJS, except when the
 * process was started with `--input-type=module`, which workers inherit and which makes
 * `require` undefined. `import()` works in both.
 *
 * The checks mirror ExtentCodec's (codec.ts) exactly; a test compares the pool's output
 * with the in-thread codec's on the same inputs so the two cannot drift apart silently.
 *
 * Messages in: `{ id, op, buffer, lengths, codecs?, rawLengths? }` where `buffer` is a
 * transferred ArrayBuffer holding the batch's inputs back to back and `lengths` their
 * byte lengths. Messages out: `{ id, ok: true, buffer, lengths, codecs? }` (buffer
 * transferred back) or `{ id, ok: false, code, message, data }`.
 *
 * compress emits the codec the parent chose (`compression`: zstd, codec 2, at `zstdLevel`,
 * or lz4, codec 1), and works in place: output i is never longer than input i (passthrough or at
 * most maxCompressedFraction of it), so it can be written at an offset no later than
 * input i's, over bytes already consumed, and the input buffer goes back as the output.
 */
export const CODEC_WORKER_SOURCE = String.raw`
'use strict';
(async () => {
const { parentPort, workerData } = await import('node:worker_threads');
const { createHash } = await import('node:crypto');
const { lz4Url, zstdUrl, zstdBindingUrl, compression, zstdLevel, maxCompressedFraction, maxRawBytes, digestAlgorithm, digestBytes } = workerData;
// Loaded before the first message is read (a MessagePort queues until a listener is
// attached), so the ops below stay synchronous.
const lz4Module = await import(lz4Url);
const lz4 = lz4Module.compressSync ? lz4Module : lz4Module.default;
const loadLz4 = () => lz4;
// zstd (codec 2): one compressor at the pool's level and one decompression context per
// worker, as ExtentCodec keeps (zstdUrl is empty where the parent could not load zstd-napi).
let zstdCompressor;
let zstdDecoder;
if (zstdUrl) {
  const zMod = await import(zstdUrl);
  const zApi = zMod.Compressor ? zMod : zMod.default;
  const zBin = await import(zstdBindingUrl);
  const zBinding = zBin.DCtx ? zBin : zBin.default;
  zstdCompressor = new zApi.Compressor();
  zstdCompressor.setParameters({ compressionLevel: zstdLevel });
  zstdDecoder = new zBinding.DCtx();
}
// The codec id compress() emits: 2 (zstd) or 1 (lz4), as the parent's ExtentCodec.
const compressId = compression === 'zstd' ? 2 : 1;
const compressOne = compressId === 2 ? (input) => zstdCompressor.compress(input) : (input) => loadLz4().compressSync(input);

class CodedError extends Error {
  constructor(code, message, data) { super(message); this.code = code; this.data = data; }
}

function compress(msg) {
  const u8 = new Uint8Array(msg.buffer);
  const count = msg.lengths.length;
  const codecs = new Uint8Array(count);
  const outLengths = new Uint32Array(count);
  let inOffset = 0;
  let outOffset = 0;
  for (let i = 0; i < count; i++) {
    const byteLength = msg.lengths[i];
    let codec = 0;
    let outLength = byteLength;
    if (byteLength > 0) {
      const out = compressOne(Buffer.from(msg.buffer, inOffset, byteLength));
      if (out.byteLength <= byteLength * maxCompressedFraction) {
        u8.set(out, outOffset);
        codec = compressId;
        outLength = out.byteLength;
      } else if (outOffset !== inOffset) {
        u8.copyWithin(outOffset, inOffset, inOffset + byteLength);
      }
    }
    codecs[i] = codec;
    outLengths[i] = outLength;
    inOffset += byteLength;
    outOffset += outLength;
  }
  return { buffer: msg.buffer, lengths: outLengths, codecs };
}

function decompress(msg) {
  const count = msg.lengths.length;
  let total = 0;
  for (let i = 0; i < count; i++) {
    const rawLength = msg.rawLengths[i];
    if (rawLength > maxRawBytes) throw new CodedError('CORRUPTION', 'rawLength ' + rawLength + ' exceeds the codec limit of ' + maxRawBytes, { index: i, rawLength });
    total += rawLength;
  }
  const out = new Uint8Array(total);
  let inOffset = 0;
  let outOffset = 0;
  for (let i = 0; i < count; i++) {
    const byteLength = msg.lengths[i];
    const rawLength = msg.rawLengths[i];
    const codec = msg.codecs[i];
    const input = new Uint8Array(msg.buffer, inOffset, byteLength);
    if (codec === 0) {
      if (byteLength !== rawLength) throw new CodedError('CORRUPTION', 'raw extent is ' + byteLength + ' bytes, expected ' + rawLength, { index: i, codec, rawLength, byteLength });
      out.set(input, outOffset);
    } else if (codec === 1) {
      if (byteLength <= 4) throw new CodedError('CORRUPTION', 'lz4 payload of ' + byteLength + ' bytes is too short', { index: i, codec, rawLength, byteLength });
      const declared = new DataView(msg.buffer, inOffset, 4).getUint32(0, true);
      if (declared !== rawLength) throw new CodedError('CORRUPTION', 'lz4 payload declares ' + declared + ' bytes, expected ' + rawLength, { index: i, codec, rawLength, declaredBytes: declared });
      let decoded;
      try {
        decoded = loadLz4().uncompressSync(Buffer.from(msg.buffer, inOffset, byteLength));
      } catch (err) {
        throw new CodedError('CORRUPTION', 'malformed lz4 payload: ' + (err && err.message), { index: i, codec, rawLength, byteLength });
      }
      if (decoded.byteLength !== rawLength) throw new CodedError('CORRUPTION', 'lz4 payload decoded to ' + decoded.byteLength + ' bytes, expected ' + rawLength, { index: i, codec, rawLength, decodedBytes: decoded.byteLength });
      out.set(decoded, outOffset);
    } else if (codec === 2) {
      if (!zstdDecoder) throw new CodedError('NOT_SUPPORTED', 'a zstd payload, and zstd-napi could not be loaded here', { index: i, codec });
      let n;
      try {
        // Into exactly rawLength bytes: a frame that would need more fails inside zstd.
        n = zstdDecoder.decompress(out.subarray(outOffset, outOffset + rawLength), input);
      } catch (err) {
        throw new CodedError('CORRUPTION', 'malformed zstd payload: ' + (err && err.message), { index: i, codec, rawLength, byteLength });
      }
      if (n !== rawLength) throw new CodedError('CORRUPTION', 'zstd payload decoded to ' + n + ' bytes, expected ' + rawLength, { index: i, codec, rawLength, decodedBytes: n });
    } else {
      throw new CodedError('INVALID_ARGUMENT', 'unknown codec id ' + codec, { index: i, codec });
    }
    inOffset += byteLength;
    outOffset += rawLength;
  }
  return { buffer: out.buffer, lengths: Uint32Array.from(msg.rawLengths) };
}

function fingerprint(msg) {
  const count = msg.lengths.length;
  const out = new Uint8Array(count * digestBytes);
  let inOffset = 0;
  for (let i = 0; i < count; i++) {
    const byteLength = msg.lengths[i];
    out.set(createHash(digestAlgorithm).update(new Uint8Array(msg.buffer, inOffset, byteLength)).digest(), i * digestBytes);
    inOffset += byteLength;
  }
  return { buffer: out.buffer, lengths: new Uint32Array(count).fill(digestBytes) };
}

const ops = { compress, decompress, fingerprint };

parentPort.on('message', (msg) => {
  try {
    const op = ops[msg.op];
    if (!op) throw new CodedError('INTERNAL', 'unknown pool op ' + String(msg.op), {});
    const result = op(msg);
    parentPort.postMessage({ id: msg.id, ok: true, ...result }, [result.buffer]);
  } catch (err) {
    const coded = err instanceof CodedError;
    parentPort.postMessage({
      id: msg.id,
      ok: false,
      code: coded ? err.code : 'INTERNAL',
      message: String(err && err.message),
      data: coded ? err.data : {},
    });
  }
});
})();
`;
