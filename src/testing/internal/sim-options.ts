/**
 * Names, addresses and link options of a SimulatedNetwork: parsing, validation and the
 * defaults of `LinkOptions`.
 */
import { DrkitError } from '../../core/errors.js';
import { assertNonNegativeInteger, assertPositiveInteger } from '../../core/validate.js';
import type { LinkOptions } from '../simulated-network.js';
import type { LinkCounters, ResolvedLink } from './sim-wire.js';

/** Linux's minimum retransmission timeout: the default first RTO of a lossy link. */
const MIN_RETRANSMIT_TIMEOUT_MS = 200;

/** All-zero counters of one direction. */
export function newCounters(): LinkCounters {
  return {
    bytesSent: 0,
    bytesRetransmitted: 0,
    bytesDelivered: 0,
    segmentsSent: 0,
    segmentsLost: 0,
    segmentsReordered: 0,
    connectionsOpened: 0,
    connectionsBroken: 0,
  };
}

/** Key of an unordered host pair (links and partitions are symmetric). */
export function pairKey(hostA: string, hostB: string): string {
  return hostA < hostB ? `${hostA}\n${hostB}` : `${hostB}\n${hostA}`;
}

/** Key of one direction of a host pair (wires and counters are per direction). */
export function directionKey(fromHost: string, toHost: string): string {
  return `${fromHost}\n${toHost}`;
}

/** @throws INVALID_ARGUMENT unless `host` is a non-empty name without ":" or whitespace */
export function assertHostName(host: unknown, name: string): asserts host is string {
  if (typeof host !== 'string' || !/^[^\s:]+$/.test(host)) {
    throw new DrkitError('INVALID_ARGUMENT', `${name} must be a non-empty host name without ':' or spaces, got ${JSON.stringify(host)}`, {
      data: { name },
    });
  }
}

/** Splits "host:port". @throws INVALID_ARGUMENT */
export function parseAddress(address: unknown): { host: string; port: number } {
  const match = typeof address === 'string' ? /^([^\s:]+):(\d{1,5})$/.exec(address) : null;
  const port = match === null ? NaN : Number(match[2]);
  if (match === null || port > 65_535) {
    throw new DrkitError('INVALID_ARGUMENT', `address must be "host:port", got ${JSON.stringify(address)}`, { data: { address: String(address) } });
  }
  return { host: match[1]!, port };
}

function assertProbability(value: unknown, name: string): void {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw new DrkitError('INVALID_ARGUMENT', `${name} must be a probability in [0, 1], got ${String(value)}`, { data: { name } });
  }
}

/** Applies the defaults of {@link LinkOptions} and validates. @throws INVALID_ARGUMENT */
export function resolveLink(options: LinkOptions): ResolvedLink {
  const latencyMs = options.latencyMs ?? 1;
  const jitterMs = options.jitterMs ?? 0;
  const bandwidthBytesPerSec = options.bandwidthBytesPerSec ?? Infinity;
  assertNonNegativeInteger(latencyMs, 'latencyMs');
  assertNonNegativeInteger(jitterMs, 'jitterMs');
  if (typeof bandwidthBytesPerSec !== 'number' || !(bandwidthBytesPerSec > 0)) {
    throw new DrkitError('INVALID_ARGUMENT', `bandwidthBytesPerSec must be a positive number, got ${String(bandwidthBytesPerSec)}`);
  }
  const resolved: ResolvedLink = {
    latencyMs,
    jitterMs,
    bandwidthBytesPerSec,
    lossProbability: options.lossProbability ?? 0,
    reorderProbability: options.reorderProbability ?? 0,
    resetProbability: options.resetProbability ?? 0,
    retransmitTimeoutMs: options.retransmitTimeoutMs ?? Math.max(MIN_RETRANSMIT_TIMEOUT_MS, 2 * (latencyMs + jitterMs)),
  };
  assertProbability(resolved.lossProbability, 'lossProbability');
  assertProbability(resolved.reorderProbability, 'reorderProbability');
  assertProbability(resolved.resetProbability, 'resetProbability');
  assertPositiveInteger(resolved.retransmitTimeoutMs, 'retransmitTimeoutMs');
  return Object.freeze(resolved);
}
