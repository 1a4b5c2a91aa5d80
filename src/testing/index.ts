/**
 * drkit/testing: conformance suites for adapters, fault injectors, and fast-check
 * arbitraries. Conformance suites need vitest; arbitraries need fast-check (both are
 * optional peer dependencies).
 * @packageDocumentation
 */
export { ioWorkloadArbitrary, runIoWorkload, BytesModel, type IoOp, type IoWorkloadOptions } from './io-workload.js';
