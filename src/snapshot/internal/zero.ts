/** Fast all-zero test for block payloads (memcmp against a shared zero buffer). */
import { Buffer } from 'node:buffer';

let zeros = Buffer.alloc(0);

/** True when every byte of `bytes` is zero. */
export function isAllZero(bytes: Uint8Array): boolean {
  if (bytes.length === 0) return true;
  if (bytes[0] !== 0 || bytes[bytes.length - 1] !== 0) return false;
  if (zeros.length < bytes.length) zeros = Buffer.alloc(bytes.length);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).equals(zeros.subarray(0, bytes.length));
}
