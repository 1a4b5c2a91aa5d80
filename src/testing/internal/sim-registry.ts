/**
 * Book-keeping of a SimulatedNetwork: hosts, their listeners and ports, and the live
 * connections (so that partitions and crashes can find what to break).
 */
import type { Connection } from '../../adapters/transport.js';
import { DrkitError } from '../../core/errors.js';
import type { SimEndpoint } from './sim-endpoint.js';

/** First ephemeral port, as IANA's dynamic range (49152-65535). */
const FIRST_EPHEMERAL_PORT = 49_152;
const LAST_PORT = 65_535;

/** A listening socket. */
export interface ListenerRecord {
  readonly address: string;
  readonly port: number;
  readonly onConnection: (connection: Connection) => void;
  closed: boolean;
}

/** Both ends of one connection. */
export interface ConnectionRecord {
  readonly client: SimEndpoint;
  readonly server: SimEndpoint;
  readonly clientHost: string;
  readonly serverHost: string;
  doneEndpoints: number;
}

/** One named host. */
export interface HostState {
  readonly name: string;
  crashed: boolean;
  readonly listeners: Map<number, ListenerRecord>;
  readonly connections: Set<ConnectionRecord>;
  /** Rejecters of connects started at this host and not settled yet (a crash fails them). */
  readonly pendingConnects: Set<(err: Error) => void>;
  nextPort: number;
}

/** See the module comment. */
export class NetworkRegistry {
  readonly #hosts = new Map<string, HostState>();
  readonly #connections = new Map<SimEndpoint, ConnectionRecord>();
  readonly #live = new Set<ConnectionRecord>();

  /** The host named `name`, created on first mention (every name is a reachable host). */
  host(name: string): HostState {
    let state = this.#hosts.get(name);
    if (state === undefined) {
      state = { name, crashed: false, listeners: new Map(), connections: new Set(), pendingConnects: new Set(), nextPort: FIRST_EPHEMERAL_PORT };
      this.#hosts.set(name, state);
    }
    return state;
  }

  /** A free ephemeral port of `hostName` (never one a listener holds). @throws BUSY when every one is taken */
  allocatePort(hostName: string): number {
    const state = this.host(hostName);
    for (let tries = 0; tries <= LAST_PORT - FIRST_EPHEMERAL_PORT; tries++) {
      const port = state.nextPort;
      state.nextPort = port === LAST_PORT ? FIRST_EPHEMERAL_PORT : port + 1;
      if (!state.listeners.has(port)) return port;
    }
    throw new DrkitError('BUSY', `host ${hostName} has no free ephemeral port`, { data: { host: hostName } });
  }

  /** Registers a listener (`port` 0 picks an ephemeral one). The caller checked that the port is free. */
  addListener(hostName: string, port: number, onConnection: (connection: Connection) => void): ListenerRecord {
    const state = this.host(hostName);
    const actualPort = port === 0 ? this.allocatePort(hostName) : port;
    const record: ListenerRecord = { address: `${hostName}:${actualPort}`, port: actualPort, onConnection, closed: false };
    state.listeners.set(actualPort, record);
    return record;
  }

  /** The open listener at host:port, unless the host crashed. */
  listenerAt(hostName: string, port: number): ListenerRecord | undefined {
    const state = this.host(hostName);
    if (state.crashed) return undefined;
    const record = state.listeners.get(port);
    return record === undefined || record.closed ? undefined : record;
  }

  addConnection(client: SimEndpoint, server: SimEndpoint): ConnectionRecord {
    client.pairWith(server);
    server.pairWith(client);
    const record: ConnectionRecord = { client, server, clientHost: client.host, serverHost: server.host, doneEndpoints: 0 };
    this.#connections.set(client, record);
    this.#connections.set(server, record);
    this.#live.add(record);
    this.host(client.host).connections.add(record);
    this.host(server.host).connections.add(record);
    return record;
  }

  connectionOf(endpoint: SimEndpoint): ConnectionRecord | undefined {
    return this.#connections.get(endpoint);
  }

  /** Live connections (a snapshot: breaking them while iterating is safe). */
  connections(): ConnectionRecord[] {
    return [...this.#live];
  }

  get connectionCount(): number {
    return this.#live.size;
  }

  /** Forgets a connection once both of its ends are done. */
  endpointDone(endpoint: SimEndpoint): void {
    const record = this.#connections.get(endpoint);
    if (record === undefined) return;
    record.doneEndpoints++;
    if (record.doneEndpoints < 2) return;
    this.#live.delete(record);
    this.#connections.delete(record.client);
    this.#connections.delete(record.server);
    this.host(record.clientHost).connections.delete(record);
    this.host(record.serverHost).connections.delete(record);
  }
}
