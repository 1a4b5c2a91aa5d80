/**
 * Maps node:net / node:tls errors to drkit codes, so callers branch on
 * CONNECTION_REFUSED (nobody there: retry later or elsewhere), CONNECTION_LOST (it broke:
 * reconnect and resume), TIMEOUT and AUTH_FAILED (do not retry with the same credentials).
 */
import { AbortError, DrkitError } from '../../core/errors.js';
import type { ErrorCode } from '../../core/error-codes.js';

/** System codes meaning nobody accepted the connection at that address. */
const REFUSED_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
/** System codes meaning an established (or establishing) connection broke. */
const LOST_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_SOCKET_CLOSED', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_PREMATURE_CLOSE']);
/** Certificate verification failures reported by OpenSSL or node's identity check. */
const CERT_CODE = /CERT|UNABLE_TO_(GET|VERIFY|DECRYPT|DECODE)|ALTNAME|SELF_SIGNED|UNKNOWN_CA|ACCESS_DENIED|HANDSHAKE_FAILURE/;

/** Maps a socket error to a DrkitError (a DrkitError passes through unchanged). */
export function socketError(err: unknown, fallback: ErrorCode, message: string, data: Record<string, unknown> = {}): DrkitError {
  if (err instanceof DrkitError) return err;
  const sysCode = (err as { code?: unknown } | null)?.code;
  const text = `${message}: ${(err as Error | null)?.message ?? String(err)}`;
  const withCode = { ...data, ...(typeof sysCode === 'string' ? { sysCode } : {}) };
  if (sysCode === 'ABORT_ERR' || (err as { name?: unknown } | null)?.name === 'AbortError') {
    return new AbortError(text, { cause: err, data: withCode });
  }
  let code: ErrorCode = fallback;
  if (typeof sysCode === 'string') {
    if (REFUSED_CODES.has(sysCode)) code = 'CONNECTION_REFUSED';
    else if (LOST_CODES.has(sysCode)) code = 'CONNECTION_LOST';
    else if (sysCode === 'ETIMEDOUT') code = 'TIMEOUT';
    else if (sysCode === 'EADDRINUSE') code = 'ALREADY_EXISTS';
    else if (CERT_CODE.test(sysCode)) code = 'AUTH_FAILED';
    else if (sysCode.startsWith('ERR_SSL_') || sysCode.startsWith('ERR_TLS_')) code = 'PROTOCOL_ERROR';
  }
  return new DrkitError(code, text, { cause: err, data: withCode });
}
