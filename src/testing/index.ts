/**
 * drkit/testing: conformance suites for adapters, fault injectors, and fast-check
 * arbitraries. Conformance suites need vitest; arbitraries need fast-check (both are
 * optional peer dependencies).
 * @packageDocumentation
 */
export { ioWorkloadArbitrary, runIoWorkload, BytesModel, type IoOp, type IoWorkloadOptions } from './io-workload.js';
export { describeExtentStore, type ExtentStoreSuiteOptions } from './describe-extent-store.js';
export { FaultyBlockDevice, type FaultyBlockDeviceOptions, type FaultyBlockDeviceStats, type FaultyOp, type FaultRule, type CrashOutcome } from './faulty-block-device.js';
export { describeBlockDevice, type BlockDeviceSuiteOptions } from './describe-block-device.js';
export { describeMetaStore, type MetaStoreSuiteOptions } from './describe-meta-store.js';
export { SnapshotModel, type ModelVolume, type ModelSnapshot } from './snapshot-model.js';
export { snapshotOpsArbitrary, type SnapshotOp, type SnapshotOpsOptions } from './snapshot-arbitraries.js';
export { runSnapshotWorkload, type SnapshotWorkloadEnv, type SnapshotWorkloadOptions, type SnapshotWorkloadStats } from './snapshot-workload.js';
