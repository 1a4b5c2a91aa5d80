/**
 * drkit/nbd (Node only): an NBD server exporting a SnapshotTree's volumes and clones
 * (read-write) and snapshots (read-only, as `VOLUME@SNAPSHOT`) to real disk tools.
 * @packageDocumentation
 */
export { NbdServer } from './nbd-server.js';
export type { NbdServerOptions, NbdListen, NbdAddress, NbdServerStats } from './nbd-options.js';
export { listNbdExports, findNbdExport, type NbdExport, type NbdExportKind, type NbdCatalogOptions } from './export-catalog.js';
