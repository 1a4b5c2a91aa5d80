/**
 * drkit/testing without the vitest conformance suites: fault injectors, fast-check
 * arbitraries, models and workload runners. This is what `require('drkit/testing')`
 * loads (vitest itself cannot be required from CommonJS); ESM `import` gets it all.
 * @packageDocumentation
 */
export { ioWorkloadArbitrary, runIoWorkload, BytesModel, type IoOp, type IoWorkloadOptions } from './io-workload.js';
export { FaultyBlockDevice, type FaultyBlockDeviceOptions, type FaultyBlockDeviceStats, type FaultyOp, type FaultRule, type CrashOutcome } from './faulty-block-device.js';
export { SnapshotModel, type ModelVolume, type ModelSnapshot } from './snapshot-model.js';
export { snapshotOpsArbitrary, type SnapshotOp, type SnapshotOpsOptions } from './snapshot-arbitraries.js';
export { runSnapshotWorkload, type SnapshotWorkloadEnv, type SnapshotWorkloadOptions, type SnapshotWorkloadStats } from './snapshot-workload.js';
export { SeededPrng } from './internal/seeded-prng.js';
export { SimulatedNetwork, type SimulatedNetworkOptions, type LinkOptions, type LinkStats, type AutoAdvance, type AutoAdvanceOptions } from './simulated-network.js';
