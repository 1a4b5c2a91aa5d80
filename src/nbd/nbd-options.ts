/**
 * Options, address and statistics types of {@link NbdServer}, and the up-front
 * validation of the options.
 */
import { DrkitError } from '../core/errors.js';
import type { SnapshotTree } from '../snapshot/index.js';
import type { NbdCatalogOptions } from './export-catalog.js';

/** Where the server listens: TCP (port 0 picks a free port) or a Unix socket path. */
export type NbdListen = { readonly host?: string; readonly port: number } | { readonly socketPath: string };

/** Where a started server listens. */
export type NbdAddress = { readonly kind: 'tcp'; readonly host: string; readonly port: number } | { readonly kind: 'unix'; readonly socketPath: string };

/** Options of {@link NbdServer.start}. */
export interface NbdServerOptions extends NbdCatalogOptions {
  /** The tree whose volumes and snapshots are exported. The server never closes it. */
  tree: SnapshotTree;
  /**
   * Where to listen. `host` defaults to loopback: exports are unauthenticated and volumes
   * writable, so listening on a network is a deliberate choice.
   * @defaultValue host `'127.0.0.1'`
   */
  listen: NbdListen;
  /** The export a client's empty name selects (`nbd://host:port` without a path). @defaultValue none: an empty name is unknown */
  defaultExport?: string;
  /** Called for failures a client sees only as an NBD error or a closed connection (I/O errors, protocol violations). @defaultValue ignore */
  onError?: (error: DrkitError) => void;
}

/** Counters of a server since it started. */
export interface NbdServerStats {
  /** Connections accepted. */
  readonly connectionsAccepted: number;
  /** Connections open now (negotiating or transmitting). */
  readonly connectionsActive: number;
  /** Transmission requests received (reads, writes, flushes, trims, refused ones). */
  readonly requests: number;
  /** Bytes clients read. */
  readonly bytesRead: number;
  /** Bytes clients wrote (WRITE payloads; trims and zeroing not counted). */
  readonly bytesWritten: number;
  /** Failures reported to `onError`. */
  readonly errors: number;
}

/** Highest TCP port number. */
const MAX_PORT = 65535;

/**
 * Checks the options before anything listens.
 * @throws INVALID_ARGUMENT naming the bad field
 */
export function validateNbdServerOptions(options: NbdServerOptions): void {
  const bad = (field: string, want: string): DrkitError => new DrkitError('INVALID_ARGUMENT', `NbdServer.start: ${field} must be ${want}`, { data: { field } });
  if (typeof options !== 'object' || options === null) throw bad('options', 'an object');
  const tree = options.tree as unknown as { listVolumes?: unknown } | undefined;
  if (typeof tree !== 'object' || tree === null || typeof tree.listVolumes !== 'function') throw bad('tree', 'a SnapshotTree');
  const listen = options.listen as Record<string, unknown> | undefined;
  if (typeof listen !== 'object' || listen === null) throw bad('listen', '{ host?, port } or { socketPath }');
  if ('socketPath' in listen) {
    if (typeof listen.socketPath !== 'string' || listen.socketPath === '') throw bad('listen.socketPath', 'a non-empty path');
  } else {
    const port = listen.port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > MAX_PORT) throw bad('listen.port', `an integer 0-${MAX_PORT}`);
    if (listen.host !== undefined && (typeof listen.host !== 'string' || listen.host === '')) throw bad('listen.host', 'a non-empty host name or address');
  }
  if (options.exports !== undefined && typeof options.exports !== 'function') throw bad('exports', 'a function (entry) => boolean');
  if (options.readOnly !== undefined && typeof options.readOnly !== 'boolean') throw bad('readOnly', 'a boolean');
  if (options.defaultExport !== undefined && typeof options.defaultExport !== 'string') throw bad('defaultExport', 'a string');
  if (options.onError !== undefined && typeof options.onError !== 'function') throw bad('onError', 'a function');
}
