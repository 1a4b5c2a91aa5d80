/**
 * The one table of drkit error codes. Every `DrkitError` carries one of these codes;
 * callers branch on `code`, never on message text. `transient` is the default retry
 * advice for the code (an individual error may override it). docs/errors.md lists the
 * same table; a test keeps the two in step.
 */
export const ERROR_CODES = {
  INVALID_ARGUMENT: { transient: false, description: 'An argument failed validation (type, range, alignment, shape).' },
  OUT_OF_RANGE: { transient: false, description: 'An I/O request reaches outside the device or object it addresses.' },
  NOT_SUPPORTED: { transient: false, description: 'The adapter does not declare the capability the call needs.' },
  NOT_OPEN: { transient: false, description: 'The handle is closed, or was never opened.' },
  ABORTED: { transient: false, description: 'The operation was cancelled through its AbortSignal.' },
  IO_ERROR: { transient: true, description: 'The underlying device or file failed an I/O call.' },
  SHORT_IO: { transient: true, description: 'A read or write moved fewer bytes than asked and could not be completed.' },
  NOT_FOUND: { transient: false, description: 'A named object (file, key, snapshot, volume) does not exist.' },
  ALREADY_EXISTS: { transient: false, description: 'An object with that identity already exists.' },
  CORRUPTION: { transient: false, description: 'Stored or received bytes failed a checksum, fingerprint or format check.' },
  EXTENT_NOT_FOUND: { transient: false, description: 'No extent with that fingerprint is stored.' },
  NO_SPACE: { transient: false, description: 'The device or store has no room for the request.' },
  FORMAT_VERSION: { transient: false, description: 'An on-disk or wire format version this build cannot read.' },
  CLOSED: { transient: false, description: 'The object was closed while the operation was in flight.' },
  BUSY: { transient: true, description: 'The resource is in use (locked, pinned, or at its concurrency bound).' },
  TIMEOUT: { transient: true, description: 'The operation did not finish within its deadline.' },
  CRASHED: { transient: false, description: 'A fault injector simulated a crash; the handle is dead until reopened.' },
  INJECTED_FAULT: { transient: true, description: 'A fault injector failed this I/O on purpose.' },
  CONNECTION_REFUSED: { transient: true, description: 'Nobody accepted the connection at that address (or the network is partitioned).' },
  CONNECTION_LOST: { transient: true, description: 'An established connection broke (reset, partition, peer crash, timeout).' },
  AUTH_FAILED: { transient: false, description: 'The peer could not be authenticated, or refused our credentials.' },
  PROTOCOL_ERROR: { transient: false, description: 'The peer sent a malformed, oversized, unexpected or replayed frame; the connection is closed.' },
  STALE_GENERATION: { transient: false, description: 'Replication of a lineage at an older promotion generation than the target already knows (a stale side); fail it back instead.' },
  DIVERGED: { transient: false, description: 'The lineage was written on this side after the common base (or is still writable here); keep or discard those writes explicitly (force) first.' },
  SUSPENDED: { transient: true, description: 'A Metro volume refuses writes: this side holds no lease, or lost both its peer and the witness (retry, or force one side).' },
  INTERNAL: { transient: false, description: 'An invariant inside drkit was violated: a bug, please report it.' },
} as const satisfies Record<string, { transient: boolean; description: string }>;

/** A drkit error code: a key of {@link ERROR_CODES}. */
export type ErrorCode = keyof typeof ERROR_CODES;
