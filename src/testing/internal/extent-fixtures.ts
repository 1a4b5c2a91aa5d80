/**
 * Deterministic extents for the ExtentStore conformance suite and crash tests: extent
 * `id` always has the same fingerprint and bytes, so a model only needs to track ids.
 */
import { vitest } from './vitest-api.js';
import { DrkitError } from '../../core/errors.js';

/**
 * Extent lengths cycled through by id: empty, tiny, around 512 B sectors and 4 KiB units,
 * and one spanning several units, so allocation edges are exercised.
 */
export const FIXTURE_LENGTHS = [0, 1, 100, 511, 512, 4095, 4096, 4097, 9000, 20_000] as const;

/** A 32-byte fingerprint for `id` (bytes vary in the first position, so ids sort apart). */
export function fixtureFingerprint(id: number): Uint8Array {
  const fp = new Uint8Array(32);
  let x = (id * 0x9e3779b1 + 0x7f4a7c15) >>> 0 || 1;
  for (let i = 0; i < fp.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    fp[i] = x & 0xff;
  }
  return fp;
}

/** The bytes of extent `id`, of `byteLength` bytes (default: from {@link FIXTURE_LENGTHS}). */
export function fixtureData(id: number, byteLength: number = FIXTURE_LENGTHS[id % FIXTURE_LENGTHS.length]!): Uint8Array {
  if (!Number.isSafeInteger(byteLength) || byteLength < 0) {
    throw new DrkitError('INVALID_ARGUMENT', `fixtureData: bad byteLength ${byteLength}`);
  }
  const out = new Uint8Array(byteLength);
  let x = (id * 0x85ebca6b + 0xc2b2ae35) >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** An ExtentPut for extent `id`. */
export function fixtureExtent(id: number, byteLength?: number): { fingerprint: Uint8Array; data: Uint8Array } {
  return { fingerprint: fixtureFingerprint(id), data: fixtureData(id, byteLength) };
}

/**
 * Asserts two byte arrays are equal, fast: vitest's deep equality walks typed arrays
 * element by element (seconds for a few MiB), and its diff of megabytes helps nobody.
 */
export function expectSameBytes(actual: Uint8Array, expected: Uint8Array, what = 'bytes'): void {
  vitest().expect(actual, `${what}: not a Uint8Array`).toBeInstanceOf(Uint8Array);
  let firstDiff = -1;
  const n = Math.min(actual.byteLength, expected.byteLength);
  for (let i = 0; i < n; i++) {
    if (actual[i] !== expected[i]) {
      firstDiff = i;
      break;
    }
  }
  vitest().expect({ byteLength: actual.byteLength, firstDiff }, what).toEqual({ byteLength: expected.byteLength, firstDiff: -1 });
}
