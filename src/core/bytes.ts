/** Small byte helpers shared by every layer. */

type LatinBuffer = { from(a: ArrayBufferLike | string, b?: number | string, c?: number): Uint8Array & { toString(enc: string): string } };
const NodeBuffer = (globalThis as { Buffer?: LatinBuffer }).Buffer;

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i]!];
  return out;
}

/** Parses lower- or upper-case hex; returns undefined on malformed input. */
export function fromHex(hex: string): Uint8Array | undefined {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return undefined;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/**
 * Encodes bytes as a "binary string" (one char per byte, code 0-255). JavaScript string
 * comparison then orders keys exactly like unsigned bytewise comparison, so such strings
 * serve as Map keys and sort keys for byte keys.
 */
export function bytesToKey(bytes: Uint8Array): string {
  // Node's native latin1 decoder maps each byte to the char of the same code, ~10x faster
  // than building the string in JS; the fallback keeps the core portable.
  if (NodeBuffer !== undefined) return NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  let out = '';
  const CHUNK_BYTES = 8192; // keeps String.fromCharCode's argument list bounded
  for (let i = 0; i < bytes.length; i += CHUNK_BYTES) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK_BYTES) as unknown as number[]);
  }
  return out;
}

/** Inverse of {@link bytesToKey}. */
export function keyToBytes(key: string): Uint8Array {
  if (NodeBuffer !== undefined) {
    const b = NodeBuffer.from(key, 'latin1');
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }
  const out = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) out[i] = key.charCodeAt(i);
  return out;
}

/** Unsigned bytewise comparison: negative, zero or positive. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** True when both arrays hold the same bytes. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Concatenates byte arrays into one new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** UTF-8 encode. */
export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
