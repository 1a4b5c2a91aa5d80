import { DrkitError } from './errors.js';

/**
 * Asserts that `value` is a safe non-negative integer.
 * @throws INVALID_ARGUMENT
 */
export function assertNonNegativeInteger(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new DrkitError('INVALID_ARGUMENT', `${name} must be a non-negative safe integer, got ${String(value)}`, {
      data: { name, value: String(value) },
    });
  }
}

/**
 * Asserts that `value` is a safe integer greater than zero.
 * @throws INVALID_ARGUMENT
 */
export function assertPositiveInteger(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new DrkitError('INVALID_ARGUMENT', `${name} must be a positive safe integer, got ${String(value)}`, {
      data: { name, value: String(value) },
    });
  }
}

/**
 * Asserts that `value` is a Uint8Array (Buffer counts).
 * @throws INVALID_ARGUMENT
 */
export function assertBytes(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new DrkitError('INVALID_ARGUMENT', `${name} must be a Uint8Array`, { data: { name } });
  }
}

/**
 * Asserts that [byteOffset, byteOffset + byteLength) lies within [0, limitBytes).
 * @throws INVALID_ARGUMENT for bad numbers, OUT_OF_RANGE for a range past the end
 */
export function assertRange(byteOffset: number, byteLength: number, limitBytes: number, what: string): void {
  assertNonNegativeInteger(byteOffset, 'byteOffset');
  assertNonNegativeInteger(byteLength, 'byteLength');
  if (byteOffset + byteLength > limitBytes) {
    throw new DrkitError('OUT_OF_RANGE', `${what}: range [${byteOffset}, ${byteOffset + byteLength}) exceeds ${limitBytes} bytes`, {
      data: { byteOffset, byteLength, limitBytes },
    });
  }
}
