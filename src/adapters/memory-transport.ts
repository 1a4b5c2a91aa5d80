/**
 * An in-process network: a {@link Transport} whose listeners and connections live in one
 * MemoryTransport object, for tests, simulations and single-process sites. Both sides
 * use the same instance: `net.listen('siteB:7000', ...)`, `net.connect('siteB:7000')`.
 *
 * Backpressure: each direction of a connection buffers at most `highWaterBytes` plus
 * one write; `write()` waits until the peer's unread bytes are below the bound.
 * Failure model: `destroy()` on one end makes the other end's read throw and its writes
 * reject with CONNECTION_LOST; connecting to an address nobody listens on rejects with
 * CONNECTION_REFUSED. Nothing is lost or reordered otherwise (use SimulatedNetwork for faults).
 */
import type { Connection, Listener, ListenOptions, Transport } from './transport.js';
import type { IoOptions } from './block-device.js';
import { DrkitError } from '../core/errors.js';
import { assertPositiveInteger } from '../core/validate.js';
import { formatHostPort, parseHostPort } from './internal/host-port.js';
import { MemoryConnection } from './internal/memory-connection.js';
import { checkConnectOptions, checkListenOptions, checkOptionsObject } from './internal/transport-options.js';

/**
 * Default per-direction buffer: 1 MiB, as a socket's receive queue, so code tested on
 * memory sees backpressure at the same scale it will meet on TCP.
 */
const DEFAULT_HIGH_WATER_BYTES = 1024 * 1024;
/** Ports handed out for port 0 and to clients: the IANA dynamic range. */
const FIRST_EPHEMERAL_PORT = 49152;
const LAST_PORT = 65535;
/** Host part of client-side addresses (what a server sees as its peer). */
const CLIENT_HOST = 'client';

/** Options of {@link MemoryTransport.create}. */
export interface MemoryTransportOptions {
  /** Unread bytes one direction of a connection buffers before writes wait. @defaultValue 1048576 (1 MiB) */
  highWaterBytes?: number;
}

/** See the module comment. */
export class MemoryTransport implements Transport {
  readonly #highWaterBytes: number;
  readonly #listeners = new Map<string, ListenOptions>();
  #nextEphemeralPort = FIRST_EPHEMERAL_PORT;
  #nextClientPort = FIRST_EPHEMERAL_PORT;

  private constructor(highWaterBytes: number) {
    this.#highWaterBytes = highWaterBytes;
  }

  /**
   * Creates an empty network.
   * @throws INVALID_ARGUMENT
   */
  static create(options: MemoryTransportOptions = {}): MemoryTransport {
    checkOptionsObject(options, 'MemoryTransport.create');
    const highWaterBytes = options.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES;
    assertPositiveInteger(highWaterBytes, 'highWaterBytes');
    return new MemoryTransport(highWaterBytes);
  }

  /**
   * Connects to a listener of this network. The listener's `onConnection` runs before
   * this resolves; if it throws, the returned connection is already lost.
   * @throws INVALID_ARGUMENT, CONNECTION_REFUSED (nobody listens there), ABORTED
   */
  async connect(address: string, options?: IoOptions & { timeoutMs?: number }): Promise<Connection> {
    const target = parseHostPort(address, 'MemoryTransport.connect');
    checkConnectOptions(options, 'MemoryTransport.connect');
    const key = formatHostPort(target.host, target.port);
    const listener = this.#listeners.get(key);
    if (listener === undefined) {
      throw new DrkitError('CONNECTION_REFUSED', `nobody listens on ${key}`, { data: { address: key } });
    }
    const clientAddress = formatHostPort(CLIENT_HOST, this.#clientPort());
    const [client, server] = MemoryConnection.pair(clientAddress, key, this.#highWaterBytes);
    try {
      listener.onConnection(server);
    } catch (err) {
      server.destroy(err instanceof Error ? err : undefined);
    }
    return client;
  }

  /**
   * Listens on "name:port" of this network (port 0 picks a free one).
   * @throws INVALID_ARGUMENT, ALREADY_EXISTS (someone listens there), BUSY (no free port), ABORTED
   */
  async listen(address: string, options: ListenOptions): Promise<Listener> {
    const target = parseHostPort(address, 'MemoryTransport.listen');
    checkListenOptions(options, 'MemoryTransport.listen');
    const port = target.port === 0 ? this.#freePort(target.host) : target.port;
    const key = formatHostPort(target.host, port);
    if (this.#listeners.has(key)) {
      throw new DrkitError('ALREADY_EXISTS', `someone already listens on ${key}`, { data: { address: key } });
    }
    const entry: ListenOptions = { onConnection: options.onConnection };
    this.#listeners.set(key, entry);
    const listeners = this.#listeners;
    return {
      address: key,
      async close(): Promise<void> {
        if (listeners.get(key) === entry) listeners.delete(key);
      },
    };
  }

  #freePort(host: string): number {
    for (let tries = 0; tries <= LAST_PORT - FIRST_EPHEMERAL_PORT; tries++) {
      const port = this.#nextEphemeralPort;
      this.#nextEphemeralPort = port === LAST_PORT ? FIRST_EPHEMERAL_PORT : port + 1;
      if (!this.#listeners.has(formatHostPort(host, port))) return port;
    }
    throw new DrkitError('BUSY', `no free port left on ${host}`, { data: { host } });
  }

  #clientPort(): number {
    const port = this.#nextClientPort;
    this.#nextClientPort = port === LAST_PORT ? FIRST_EPHEMERAL_PORT : port + 1;
    return port;
  }
}
