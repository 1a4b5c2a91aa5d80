/**
 * drkit/adapters: the contracts drkit runs on (BlockDevice, MetaStore, ExtentStore,
 * Clock) and the portable implementations. Node-only adapters live in
 * `drkit/adapters/node`.
 * @packageDocumentation
 */
export type { BlockDevice, BlockDeviceCapabilities, BlockRead, BlockWrite, IoOptions } from './block-device.js';
export type { MetaStore, MetaOp, MetaRange, BatchOptions, MetaStoreStats } from './meta-store.js';
export type { ExtentStore, ExtentPut, ExtentInfo, ExtentStoreStats, ExtentStoreCapabilities, PreparedExtentCommit, StoredForm, StoredExtent, StoredReadOptions, ExtentDecoder } from './extent-store.js';
export type { Clock, TimerHandle } from './clock.js';
export { SystemClock } from './system-clock.js';
export { VirtualClock } from './virtual-clock.js';
export { MemoryBlockDevice, type MemoryBlockDeviceOptions } from './memory-block-device.js';
export { MemoryMetaStore, type MemoryMetaStoreOptions } from './memory-meta-store.js';
export { guardBlockDevice, type GuardBlockDeviceOptions, type GuardedBlockDevice } from './guard-block-device.js';
export { MemoryExtentStore, type MemoryExtentStoreOptions } from './memory-extent-store.js';
export {
  DeviceExtentStore,
  DEFAULT_EXTENT_CACHE_BYTES,
  type DeviceExtentStoreOptions,
  type DeviceExtentStoreUpgradeOptions,
  type ExtentStoreUpgradeResult,
} from './device-extent-store.js';
export { copyMetaStore, type CopyMetaStoreOptions } from './copy-meta-store.js';
export { LogMetaStore, type LogMetaStoreOptions } from './log-meta-store.js';
export type { Transport, Connection, ConnectionReadOptions, Listener, ListenOptions, PeerInfo } from './transport.js';
export { MemoryTransport, type MemoryTransportOptions } from './memory-transport.js';
