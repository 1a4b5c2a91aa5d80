/**
 * drkit/metro: Metro availability — a volume mirrored synchronously between two sites
 * (RPO 0), a witness that leases each pair to at most one writable side, automatic
 * takeover when a site fails, and delta resync of the regions written while one side ran
 * alone. See docs/architecture.md ("Metro") and docs/recovery.md.
 * @packageDocumentation
 */
export { MirroredVolume, DEFAULT_PEER_TIMEOUT_MS, DEFAULT_POLL_MS, MAX_INFLIGHT_BYTES, type MirroredVolumeOptions, type MetroStatus, type MetroEvent } from './mirrored-volume.js';
export { MAX_PEER_QUEUE_BYTES, MAX_REPORTED_REGIONS, type MirrorMode } from './metro-peer.js';
export { DirtyRegions, metadataBytesFor, BITMAP_BYTE_OFFSET, DEFAULT_REGION_BYTES, MAX_REGION_BYTES, type DirtyRegionsOptions } from './dirty-regions.js';
export { Witness, MemoryWitnessStore, startWitnessServer, DEFAULT_LEASE_MS, MAX_WITNESS_PAIRS, type WitnessOptions, type WitnessStore, type PairLease, type LeaseRequest, type LeaseGrant, type WitnessServer, type WitnessServerOptions } from './witness.js';
export { FileWitnessStore } from './file-witness-store.js';
export { WitnessClient, DEFAULT_WITNESS_TIMEOUT_MS, type WitnessClientOptions } from './witness-client.js';
export { regionFingerprint, RESYNC_WINDOW_REGIONS, type ResyncResult } from './resync.js';
export type { MetroRole } from './internal/state-record.js';
