/**
 * "host:port" addresses of the socket and in-memory transports. IPv6 hosts are written
 * in brackets ("[::1]:7000"), as in URLs, so the last colon always separates the port.
 */
import { DrkitError } from '../../core/errors.js';

/** A parsed transport address. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Highest TCP port number. */
const MAX_PORT = 65535;

/**
 * Parses "host:port" (port 0..65535; "[v6]:port" for IPv6).
 * @throws INVALID_ARGUMENT
 */
export function parseHostPort(address: unknown, what: string): HostPort {
  if (typeof address !== 'string') {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: address must be a "host:port" string`, { data: { address: String(address) } });
  }
  const colon = address.lastIndexOf(':');
  let host = colon > 0 ? address.slice(0, colon) : '';
  const portText = colon > 0 ? address.slice(colon + 1) : '';
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  else if (host.includes(':')) host = '';
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : -1;
  if (host === '' || /\s/.test(host) || port < 0 || port > MAX_PORT) {
    throw new DrkitError('INVALID_ARGUMENT', `${what}: address must be "host:port" with port 0-${MAX_PORT} ("[v6]:port" for IPv6), got "${address}"`, {
      data: { address },
    });
  }
  return { host, port };
}

/** Formats a host and port as an address {@link parseHostPort} reads back. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
