/**
 * NbdServer: exports the volumes, clones and snapshots of a SnapshotTree over the NBD
 * protocol (fixed newstyle negotiation, simple replies), on TCP or a Unix socket, so
 * qemu-img, qemu-io, nbdcopy, nbdinfo, the Linux nbd driver and hypervisors read and
 * write them directly: an instant restore runs a VM from a snapshot's clone without
 * copying it first.
 *
 * Promise: writes a client had acknowledged are committed by FLUSH/FUA, when the client
 * disconnects, and by `close()`, which stops accepting, lets requests in flight finish,
 * flushes what connections wrote and then closes them. The server holds a handle on each
 * export in use (a volume cannot be deleted, a snapshot is pinned) until its connection ends.
 */
import { rmSync } from 'node:fs';
import net from 'node:net';
import { DrkitError, toDrkitError } from '../core/errors.js';
import { listNbdExports, type NbdExport } from './export-catalog.js';
import { negotiate } from './internal/negotiation.js';
import { MAX_CONCURRENT_DEVICE_READS } from './internal/protocol.js';
import { ReadGate } from './internal/read-gate.js';
import { SocketReader } from './internal/socket-reader.js';
import { Transmission, type TransmissionCounters } from './internal/transmission.js';
import { validateNbdServerOptions, type NbdAddress, type NbdServerOptions, type NbdServerStats } from './nbd-options.js';

/** Host a TCP server binds when none is given: loopback only (exports are unauthenticated). */
const DEFAULT_HOST = '127.0.0.1';

interface Connection {
  readonly socket: net.Socket;
  readonly reader: SocketReader;
  transmitting: boolean;
}

/** A running NBD server. Start with {@link NbdServer.start}; stop with `close()`. */
export class NbdServer {
  /** Where the server listens (the bound port when port 0 was asked). */
  readonly address: NbdAddress;
  readonly #options: NbdServerOptions;
  readonly #server: net.Server;
  readonly #connections = new Map<Connection, Promise<void>>();
  readonly #counters: TransmissionCounters = { requests: 0, bytesRead: 0, bytesWritten: 0, errors: 0 };
  readonly #readGate = new ReadGate(MAX_CONCURRENT_DEVICE_READS);
  #accepted = 0;
  #closing: Promise<void> | undefined;

  private constructor(options: NbdServerOptions, server: net.Server, address: NbdAddress) {
    this.#options = options;
    this.#server = server;
    this.address = Object.freeze(address);
    server.on('connection', (socket) => this.#accept(socket));
  }

  /**
   * Starts listening.
   * @throws INVALID_ARGUMENT for bad options, ALREADY_EXISTS when the address is in use (for a
   *   Unix socket: a file is at the path, perhaps left by a server that crashed; remove it),
   *   IO_ERROR when listening fails otherwise
   */
  static async start(options: NbdServerOptions): Promise<NbdServer> {
    validateNbdServerOptions(options);
    const listen = options.listen;
    const server = net.createServer({ pauseOnConnect: false });
    const what = 'socketPath' in listen ? listen.socketPath : `${listen.host ?? DEFAULT_HOST}:${listen.port}`;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          err.code === 'EADDRINUSE'
            ? new DrkitError('ALREADY_EXISTS', `NBD server: ${what} is already in use`, { cause: err, data: { address: what } })
            : toDrkitError(err, 'IO_ERROR', `NBD server: listen on ${what}`, { address: what }),
        );
      });
      if ('socketPath' in listen) server.listen({ path: listen.socketPath }, resolve);
      else server.listen({ host: listen.host ?? DEFAULT_HOST, port: listen.port }, resolve);
    });
    // Accept failures (EMFILE, ...) after listening must not crash the process.
    server.on('error', () => undefined);
    const bound = server.address();
    const address: NbdAddress =
      'socketPath' in listen
        ? { kind: 'unix', socketPath: listen.socketPath }
        : { kind: 'tcp', host: listen.host ?? DEFAULT_HOST, port: typeof bound === 'object' && bound !== null ? bound.port : listen.port };
    return new NbdServer(options, server, address);
  }

  /**
   * The NBD URI of an export (what qemu-img, qemu-io and nbdcopy accept): `nbd://host:port/NAME`
   * or `nbd+unix:///NAME?socket=PATH`, the name percent-encoded.
   */
  uri(exportName = ''): string {
    const name = encodeURIComponent(exportName);
    if (this.address.kind === 'unix') return `nbd+unix:///${name}?socket=${encodeURIComponent(this.address.socketPath)}`;
    const host = this.address.host.includes(':') ? `[${this.address.host}]` : this.address.host;
    return `nbd://${host}:${this.address.port}/${name}`;
  }

  /** The exports a client can select now (what NBD_OPT_LIST answers). */
  listExports(): NbdExport[] {
    return listNbdExports(this.#options.tree, this.#options);
  }

  /** Counters since the server started. */
  stats(): NbdServerStats {
    return Object.freeze({ connectionsAccepted: this.#accepted, connectionsActive: this.#connections.size, ...this.#counters });
  }

  /**
   * Stops accepting, ends connections still negotiating, lets requests in flight finish,
   * flushes what connections wrote, closes every connection and releases their exports.
   * Idempotent; the tree stays open.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    const shutdown = new DrkitError('CLOSED', 'NBD server is closing');
    for (const c of this.#connections.keys()) {
      if (c.transmitting) c.reader.cancel(shutdown);
      else c.socket.destroy();
    }
    await Promise.all(this.#connections.values());
    await stopped;
    if (this.address.kind === 'unix') rmSync(this.address.socketPath, { force: true });
  }

  #accept(socket: net.Socket): void {
    if (this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    this.#accepted++;
    socket.setNoDelay(true);
    const connection: Connection = { socket, reader: new SocketReader(socket), transmitting: false };
    const served = this.#serve(connection)
      .catch((err: unknown) => this.#report(toDrkitError(err, 'INTERNAL', 'NBD connection teardown failed')))
      .finally(() => this.#connections.delete(connection));
    this.#connections.set(connection, served);
  }

  async #serve(c: Connection): Promise<void> {
    const options = this.#options;
    let opened;
    try {
      opened = await negotiate({ socket: c.socket, reader: c.reader, tree: options.tree, catalog: options, defaultExport: options.defaultExport });
    } catch (err) {
      // A connection destroyed by close() while negotiating is not a failure.
      if (this.#closing === undefined) this.#report(toDrkitError(err, 'PROTOCOL_ERROR', 'NBD negotiation failed'));
      c.socket.destroy();
      return;
    }
    if (opened === undefined) {
      c.socket.end(() => c.socket.destroy());
      return;
    }
    try {
      c.transmitting = true;
      // close() may have run while the export was opening: serve nothing, release it.
      if (this.#closing !== undefined) c.reader.cancel(new DrkitError('CLOSED', 'NBD server is closing'));
      await new Transmission({ socket: c.socket, reader: c.reader, opened, counters: this.#counters, readGate: this.#readGate, onError: (e) => this.#report(e) }).run();
    } finally {
      await opened.device.close();
    }
  }

  #report(error: DrkitError): void {
    this.#counters.errors++;
    if (this.#options.onError === undefined) return;
    try {
      this.#options.onError(error);
    } catch {
      // A throwing error callback must not take the server down.
    }
  }
}
