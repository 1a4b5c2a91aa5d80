import { ERROR_CODES, type ErrorCode } from './error-codes.js';

/** Options for constructing a {@link DrkitError}. */
export interface DrkitErrorOptions {
  /** The foreign or lower-level error that caused this one. */
  cause?: unknown;
  /** Structured facts about the failure (offsets, keys, ids); safe to log. */
  data?: Record<string, unknown>;
  /** Override the code's default retry advice from {@link ERROR_CODES}. */
  transient?: boolean;
}

/**
 * Brand shared by every copy of drkit loaded in one process (ESM and CJS builds, two
 * installed versions), so `instanceof DrkitError` and {@link isDrkitError} hold across them.
 */
const DRKIT_ERROR_BRAND = Symbol.for('drkit.error');

/**
 * The single error class of drkit. Branch on {@link DrkitError.code}; read
 * {@link DrkitError.transient} to decide whether to retry.
 */
export class DrkitError extends Error {
  /** Machine-readable code, listed in docs/errors.md. */
  readonly code: ErrorCode;
  /** True when retrying the same call may succeed. */
  readonly transient: boolean;
  /** Structured context of the failure. */
  readonly data: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: DrkitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DrkitError';
    this.code = code;
    this.transient = options.transient ?? ERROR_CODES[code].transient;
    this.data = Object.freeze({ ...(options.data ?? {}) });
    Object.defineProperty(this, DRKIT_ERROR_BRAND, { value: true });
  }

  /** Recognises DrkitErrors from any copy of drkit (subclasses keep the prototype check). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== DrkitError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[DRKIT_ERROR_BRAND] === true;
  }
}

/** The error every aborted drkit operation rejects with (`code: 'ABORTED'`). */
export class AbortError extends DrkitError {
  constructor(message = 'operation aborted', options: DrkitErrorOptions = {}) {
    super('ABORTED', message, options);
    this.name = 'AbortError';
  }
}

/** True when `err` is a {@link DrkitError}, optionally with the given code. */
export function isDrkitError(err: unknown, code?: ErrorCode): err is DrkitError {
  return err instanceof DrkitError && (code === undefined || err.code === code);
}

/**
 * Throws an {@link AbortError} if `signal` is aborted.
 * @throws ABORTED
 */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError('operation aborted', { cause: signal.reason });
}

/**
 * Maps a foreign error (fs, net, user adapter) to a {@link DrkitError}, keeping it as
 * `cause`. A DrkitError passes through unchanged.
 */
export function toDrkitError(err: unknown, fallback: ErrorCode, message: string, data?: Record<string, unknown>): DrkitError {
  if (err instanceof DrkitError) return err;
  const sysCode = (err as { code?: unknown } | null)?.code;
  let code: ErrorCode = fallback;
  if (sysCode === 'ENOENT') code = 'NOT_FOUND';
  else if (sysCode === 'EEXIST') code = 'ALREADY_EXISTS';
  else if (sysCode === 'ENOSPC') code = 'NO_SPACE';
  else if (sysCode === 'EBUSY' || sysCode === 'EAGAIN') code = 'BUSY';
  else if (sysCode === 'ABORT_ERR' || (err as { name?: unknown } | null)?.name === 'AbortError') {
    return new AbortError(message, { cause: err, data });
  }
  return new DrkitError(code, `${message}: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
    data: { ...data, ...(typeof sysCode === 'string' ? { sysCode } : {}) },
  });
}
