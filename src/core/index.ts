export { DrkitError, AbortError, isDrkitError, throwIfAborted, toDrkitError, type DrkitErrorOptions } from './errors.js';
export { ERROR_CODES, type ErrorCode } from './error-codes.js';
export { loadXxh64, type Xxh64 } from './checksum.js';
export { toHex, fromHex, bytesToKey, keyToBytes, compareBytes, equalBytes, concatBytes, utf8 } from './bytes.js';
