/**
 * drkit/testing: conformance suites for adapters (`describeBlockDevice`,
 * `describeMetaStore`, `describeExtentStore`; run them from vitest test files), fault
 * injectors, fast-check arbitraries and the snapshot model. vitest and fast-check are
 * optional peer dependencies. From CommonJS, everything but the suites is available.
 * @packageDocumentation
 */
export * from './core.js';
export { describeExtentStore, type ExtentStoreSuiteOptions } from './describe-extent-store.js';
export { describeBlockDevice, type BlockDeviceSuiteOptions } from './describe-block-device.js';
export { describeMetaStore, type MetaStoreSuiteOptions } from './describe-meta-store.js';
export { describeTransport, type TransportSuiteOptions, type TransportSuiteSetup } from './describe-transport.js';
