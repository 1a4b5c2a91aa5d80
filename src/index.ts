/**
 * drkit: disaster-recovery primitives for storage engineers.
 *
 * The root entry point holds what every layer shares: the coded error class and the
 * checksum and byte helpers. Each layer has its own subpath: `drkit/adapters`,
 * `drkit/adapters/node`, `drkit/dedup`, `drkit/snapshot`, `drkit/replication`,
 * `drkit/policy`, `drkit/testing`.
 * @packageDocumentation
 */
export * from './core/index.js';
