/**
 * Argument checks shared by the ExtentStore implementations, so every store rejects the
 * same bad input with the same code.
 */
import type { ExtentPut } from '../extent-store.js';
import type { IoOptions } from '../block-device.js';
import type { Xxh64 } from '../../core/checksum.js';
import { DrkitError, throwIfAborted } from '../../core/errors.js';
import { bytesToKey, toHex } from '../../core/bytes.js';

/** Longest fingerprint accepted: 64 bytes fits SHA-512 and BLAKE2b-512 digests. */
export const MAX_FINGERPRINT_BYTES = 64;

/**
 * Default largest extent: 4 MiB. Extents are read whole and verified whole, so this bounds
 * the memory one get() pins and the bytes a single bit flip makes unreadable, while being
 * far above the block sizes the snapshot layer writes (4-64 KiB) and large enough that a
 * sequential extent amortises the per-call cost (~40 µs) over >10 ms of disk transfer.
 */
export const DEFAULT_MAX_EXTENT_BYTES = 4 * 1024 * 1024;

/** A validated put: the fingerprint as a map key and the data's checksum. */
export interface CheckedPut {
  readonly key: string;
  readonly fingerprint: Uint8Array;
  readonly data: Uint8Array;
  readonly checksum: bigint;
  /** The encoded form to keep instead of `data`, with its own xxh64 (only when the store accepts stored forms). */
  readonly stored?: { readonly codec: number; readonly bytes: Uint8Array; readonly checksum: bigint };
  /** Kept raw because compressing it did not pay (only when the store accepts stored forms). */
  readonly incompressible?: boolean;
}

/**
 * Validates a fingerprint and returns its map key.
 * @throws INVALID_ARGUMENT unless a Uint8Array of 1-64 bytes
 */
export function fingerprintKey(fingerprint: unknown, what: string): string {
  if (!(fingerprint instanceof Uint8Array)) {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: fingerprint must be a Uint8Array`);
  }
  if (fingerprint.byteLength < 1 || fingerprint.byteLength > MAX_FINGERPRINT_BYTES) {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: fingerprint must be 1-${MAX_FINGERPRINT_BYTES} bytes, got ${fingerprint.byteLength}`, {
      data: { byteLength: fingerprint.byteLength },
    });
  }
  return bytesToKey(fingerprint);
}

/**
 * Validates a list of fingerprints (the argument of get/has/delete) and returns keys.
 * @throws INVALID_ARGUMENT
 */
export function fingerprintKeys(fingerprints: unknown, what: string): string[] {
  if (!Array.isArray(fingerprints)) {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: fingerprints must be an array`);
  }
  return fingerprints.map((fp) => fingerprintKey(fp, what));
}

/** Validates the trailing options object and the signal. @throws INVALID_ARGUMENT, ABORTED */
export function checkIoOptions(options: IoOptions | undefined, what: string): void {
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: options must be an object`);
  }
  throwIfAborted(options?.signal);
}

/**
 * Validates every put of a call before anything is stored, computing each checksum and
 * verifying the caller's where given: a bad entry anywhere rejects the whole call.
 * @throws INVALID_ARGUMENT for malformed entries or data over `maxExtentBytes`
 * @throws CORRUPTION when a given checksum does not match the data
 */
export function checkPuts(extents: unknown, maxExtentBytes: number, xxh: Xxh64, what: string, acceptStored = false): CheckedPut[] {
  if (!Array.isArray(extents)) {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: extents must be an array`);
  }
  const out: CheckedPut[] = [];
  for (const e of extents as unknown[]) {
    if (e === null || typeof e !== 'object') {
      throw new DrkitError('INVALID_ARGUMENT', `${what}: each extent must be an object`);
    }
    const { fingerprint, data, checksum, stored, incompressible } = e as Partial<ExtentPut>;
    const key = fingerprintKey(fingerprint, what);
    if (!(data instanceof Uint8Array)) {
      throw new DrkitError('INVALID_ARGUMENT', `${what}: extent data must be a Uint8Array`, {
        data: { fingerprint: toHex(fingerprint!) },
      });
    }
    if (data.byteLength > maxExtentBytes) {
      throw new DrkitError('INVALID_ARGUMENT', `${what}: extent of ${data.byteLength} bytes exceeds maxExtentBytes ${maxExtentBytes}`, {
        data: { fingerprint: toHex(fingerprint!), byteLength: data.byteLength, maxExtentBytes },
      });
    }
    if (checksum !== undefined && typeof checksum !== 'bigint') {
      throw new DrkitError('INVALID_ARGUMENT', `${what}: checksum must be a bigint`);
    }
    const actual = xxh.hash(data);
    if (checksum !== undefined && checksum !== actual) {
      throw new DrkitError('CORRUPTION', `${what}: extent ${toHex(fingerprint!)} does not match its checksum`, {
        data: { fingerprint: toHex(fingerprint!), expected: checksum.toString(16), actual: actual.toString(16) },
      });
    }
    const form = acceptStored ? checkStoredForm(stored, data, what) : undefined;
    const raw = acceptStored && form === undefined && incompressible === true && data.byteLength > 0;
    out.push({ key, fingerprint: fingerprint!, data, checksum: actual, ...(form === undefined ? {} : { stored: { ...form, checksum: xxh.hash(form.bytes) } }), ...(raw ? { incompressible: true } : {}) });
  }
  return out;
}

/**
 * The stored form worth keeping: undefined when absent or not smaller than the content.
 * @throws INVALID_ARGUMENT for a malformed form (codec not 1-255, bytes not a Uint8Array)
 */
function checkStoredForm(stored: unknown, data: Uint8Array, what: string): { codec: number; bytes: Uint8Array } | undefined {
  if (stored === undefined) return undefined;
  const { codec, bytes } = (stored ?? {}) as Partial<{ codec: number; bytes: Uint8Array }>;
  if (!Number.isInteger(codec) || codec! < 1 || codec! > 255 || !(bytes instanceof Uint8Array)) {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: stored must be { codec: 1-255, bytes: Uint8Array }`);
  }
  return bytes.byteLength < data.byteLength ? { codec: codec!, bytes } : undefined;
}

/** The CORRUPTION error every store reports for an extent whose bytes fail their checksum. */
export function extentCorruption(fingerprint: Uint8Array, byteOffset: number, expected: bigint, actual: bigint, cause?: unknown): DrkitError {
  return new DrkitError('CORRUPTION', `extent ${toHex(fingerprint)} at byte ${byteOffset} failed its checksum`, {
    cause,
    data: { fingerprint: toHex(fingerprint), byteOffset, expected: expected.toString(16), actual: actual.toString(16) },
  });
}

/** The EXTENT_NOT_FOUND error. */
export function extentNotFound(fingerprint: Uint8Array): DrkitError {
  return new DrkitError('EXTENT_NOT_FOUND', `no extent ${toHex(fingerprint)}`, { data: { fingerprint: toHex(fingerprint) } });
}
