/**
 * Argument checks and defaults shared by the transports, so every transport rejects the
 * same bad input with the same INVALID_ARGUMENT message.
 */
import { AbortError, DrkitError, throwIfAborted } from '../../core/errors.js';
import { assertPositiveInteger } from '../../core/validate.js';
import type { IoOptions } from '../block-device.js';
import type { ListenOptions } from '../transport.js';

/**
 * Default connect deadline: a loopback or LAN peer answers in milliseconds, a WAN
 * peer with TLS in well under a second; 10 s only trips on a dead or partitioned peer.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Default receive bound of a connection: 1 MiB holds a few wire frames so the consumer
 * rarely waits on the kernel, and keeps thousands of idle connections cheap.
 */
export const DEFAULT_READ_HIGH_WATER_BYTES = 1024 * 1024;

/**
 * Checks an `{ signal }` options object and throws if it is already aborted.
 * @throws INVALID_ARGUMENT, ABORTED
 */
export function checkIoOptions(options: IoOptions | undefined, what: string): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object') {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: options must be an object`);
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: options.signal must be an AbortSignal`);
  }
  throwIfAborted(options.signal);
}

/**
 * Checks connect options and returns the deadline.
 * @throws INVALID_ARGUMENT, ABORTED
 */
export function checkConnectOptions(options: (IoOptions & { timeoutMs?: number }) | undefined, what: string): number {
  checkIoOptions(options, what);
  const timeoutMs = options?.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  assertPositiveInteger(timeoutMs, 'timeoutMs');
  return timeoutMs;
}

/**
 * Checks listen options.
 * @throws INVALID_ARGUMENT, ABORTED
 */
export function checkListenOptions(options: ListenOptions, what: string): void {
  checkIoOptions(options, what);
  if (options === undefined || typeof options.onConnection !== 'function') {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: options.onConnection must be a function`);
  }
  if (options.onError !== undefined && typeof options.onError !== 'function') {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: options.onError must be a function`);
  }
}

/** Checks that `options`, when given, is an object. @throws INVALID_ARGUMENT */
export function checkOptionsObject(options: unknown, what: string): void {
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: options must be an object`);
  }
}

/**
 * Runs `start` under a deadline and an abort signal: on expiry it rejects with TIMEOUT,
 * on abort with ABORTED, and either way calls `cancel` to release what was started.
 * @throws TIMEOUT, ABORTED, and whatever `start` rejects with
 */
export async function withDeadline<T>(
  start: Promise<T>,
  { timeoutMs, signal, what, cancel }: { timeoutMs: number; signal: AbortSignal | undefined; what: string; cancel: () => void },
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  // Only an expired deadline or an abort cancels; when `start` itself fails it has
  // already torn down what it owns (maybe gracefully, e.g. to deliver a refusal).
  const limits = new Promise<never>((_, reject) => {
    const stop = (err: Error): void => {
      cancel();
      start.catch(() => undefined);
      reject(err);
    };
    timer = setTimeout(() => stop(new DrkitError('TIMEOUT', `${what}: no answer within ${timeoutMs} ms`, { data: { timeoutMs } })), timeoutMs);
    onAbort = () => stop(new AbortError(`${what}: aborted`, { cause: signal?.reason }));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([start, limits]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  }
}
