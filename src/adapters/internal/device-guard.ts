/**
 * Argument validation shared by every drkit BlockDevice (memory, raw file, the public
 * guard, the fault injector), so all of them reject the same bad call with the same
 * code: `NOT_OPEN` after close, `ABORTED` for an aborted signal, `INVALID_ARGUMENT` for
 * malformed or misaligned arguments, `OUT_OF_RANGE` past the end, `NOT_SUPPORTED` for an
 * undeclared capability. Checks run in that order so a closed device says so first.
 */
import type { BlockDeviceCapabilities, BlockRead, BlockWrite, IoOptions } from '../block-device.js';
import { DrkitError, throwIfAborted } from '../../core/errors.js';
import { assertBytes, assertNonNegativeInteger, assertPositiveInteger, assertRange } from '../../core/validate.js';

/** The part of a device that validation needs. */
export interface GuardedShape {
  readonly byteLength: number;
  readonly capabilities: BlockDeviceCapabilities;
}

/**
 * Rejects a call on a closed device.
 * @throws NOT_OPEN
 */
export function assertOpen(open: boolean, what: string): void {
  if (!open) throw new DrkitError('NOT_OPEN', `${what}: device is closed`);
}

/**
 * Validates the trailing options object and its signal.
 * @throws INVALID_ARGUMENT, ABORTED
 */
export function checkOptions(options: IoOptions | undefined, what: string): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object') {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: options must be an object`);
  }
  const signal = options.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: options.signal must be an AbortSignal`);
  }
  throwIfAborted(signal);
}

/**
 * Checks that a number is a multiple of the device alignment.
 * @throws INVALID_ARGUMENT
 */
export function assertAligned(value: number, alignmentBytes: number, name: string, what: string): void {
  if (alignmentBytes > 1 && value % alignmentBytes !== 0) {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: ${name} ${value} is not a multiple of ${alignmentBytes} bytes`, {
      data: { name, value, alignmentBytes },
    });
  }
}

/**
 * Validates one extent (offset + length) against the device length and alignment.
 * @throws INVALID_ARGUMENT, OUT_OF_RANGE
 */
export function checkExtent(device: GuardedShape, byteOffset: number, byteLength: number, what: string): void {
  assertNonNegativeInteger(byteOffset, 'byteOffset');
  assertNonNegativeInteger(byteLength, 'byteLength');
  const alignment = device.capabilities.alignmentBytes;
  assertAligned(byteOffset, alignment, 'byteOffset', what);
  assertAligned(byteLength, alignment, 'byteLength', what);
  assertRange(byteOffset, byteLength, device.byteLength, what);
}

/**
 * Validates the arguments of `write`.
 * @throws INVALID_ARGUMENT, OUT_OF_RANGE
 */
export function checkWrite(device: GuardedShape, byteOffset: number, data: Uint8Array, what = 'write'): void {
  assertBytes(data, 'data');
  checkExtent(device, byteOffset, data.byteLength, what);
}

/**
 * Validates the list of `readv`.
 * @throws INVALID_ARGUMENT, OUT_OF_RANGE
 */
export function checkReads(device: GuardedShape, reads: readonly BlockRead[], what = 'readv'): void {
  if (!Array.isArray(reads)) throw new DrkitError('INVALID_ARGUMENT', `${what}: reads must be an array`);
  for (const r of reads) {
    if (r === null || typeof r !== 'object') throw new DrkitError('INVALID_ARGUMENT', `${what}: each read must be an object`);
    checkExtent(device, r.byteOffset, r.byteLength, what);
  }
  checkReadsInto(reads, what);
}

/**
 * Validates the list of `writev`.
 * @throws INVALID_ARGUMENT, OUT_OF_RANGE
 */
export function checkWrites(device: GuardedShape, writes: readonly BlockWrite[], what = 'writev'): void {
  if (!Array.isArray(writes)) throw new DrkitError('INVALID_ARGUMENT', `${what}: writes must be an array`);
  for (const w of writes) {
    if (w === null || typeof w !== 'object') throw new DrkitError('INVALID_ARGUMENT', `${what}: each write must be an object`);
    checkWrite(device, w.byteOffset, w.data, what);
  }
}

/**
 * Validates a new length for `resize`.
 * @throws INVALID_ARGUMENT
 */
export function checkNewLength(device: GuardedShape, byteLength: number, what = 'resize'): void {
  assertNonNegativeInteger(byteLength, 'byteLength');
  assertAligned(byteLength, device.capabilities.alignmentBytes, 'byteLength', what);
}

/**
 * Rejects a call whose capability the device does not declare.
 * @throws NOT_SUPPORTED
 */
export function requireCapability(device: GuardedShape, capability: 'discard' | 'resizable', what: string): void {
  if (!device.capabilities[capability]) {
    throw new DrkitError('NOT_SUPPORTED', `${what}: device does not declare capability '${capability}'`, {
      data: { capability },
    });
  }
}

/**
 * Validates a capabilities object and returns a frozen copy; used on devices we build and
 * on user devices wrapped by the guard.
 * @throws INVALID_ARGUMENT
 */
export function freezeCapabilities(caps: BlockDeviceCapabilities): Readonly<BlockDeviceCapabilities> {
  if (caps === null || typeof caps !== 'object') {
    throw new DrkitError('INVALID_ARGUMENT', 'capabilities must be an object');
  }
  for (const flag of ['durableFlush', 'discard', 'resizable'] as const) {
    if (typeof caps[flag] !== 'boolean') {
      throw new DrkitError('INVALID_ARGUMENT', `capabilities.${flag} must be a boolean`);
    }
  }
  assertPositiveInteger(caps.alignmentBytes, 'capabilities.alignmentBytes');
  assertPositiveInteger(caps.atomicWriteBytes, 'capabilities.atomicWriteBytes');
  assertPositiveInteger(caps.maxConcurrency, 'capabilities.maxConcurrency');
  return Object.freeze({
    durableFlush: caps.durableFlush,
    discard: caps.discard,
    resizable: caps.resizable,
    alignmentBytes: caps.alignmentBytes,
    atomicWriteBytes: caps.atomicWriteBytes,
    maxConcurrency: caps.maxConcurrency,
  });
}

/**
 * Checks only the `into` of each read (for devices whose reads validate offsets and
 * lengths themselves): a Uint8Array of exactly byteLength bytes when given.
 * @throws INVALID_ARGUMENT
 */
export function checkReadsInto(reads: readonly BlockRead[], what = 'readv'): void {
  if (!Array.isArray(reads)) throw new DrkitError('INVALID_ARGUMENT', `${what}: reads must be an array`);
  for (const r of reads) {
    if (r !== null && typeof r === 'object' && r.into !== undefined && (!(r.into instanceof Uint8Array) || r.into.byteLength !== r.byteLength)) {
      throw new DrkitError('INVALID_ARGUMENT', `${what}: into must be a Uint8Array of byteLength (${r.byteLength}) bytes`, { data: { byteLength: r.byteLength } });
    }
  }
}

/** A read's result placed in its `into` when it has one (then that view is the result), else the bytes themselves. */
export function intoOrOwn(read: BlockRead, bytes: Uint8Array): Uint8Array {
  if (read.into === undefined) return bytes;
  read.into.set(bytes);
  return read.into;
}
