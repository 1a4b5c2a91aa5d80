/**
 * The vitest API for the conformance suites, loaded without breaking the rest of
 * drkit/testing outside vitest: vitest's module throws when evaluated outside a vitest
 * worker, so a static import would make FaultyBlockDevice and the arbitraries unusable
 * in plain scripts. Calling a suite outside vitest fails with NOT_SUPPORTED.
 */
import { DrkitError } from '../../core/errors.js';

type VitestModule = typeof import('vitest');

const loaded: VitestModule | undefined = await import('vitest').then(
  (m) => m,
  () => undefined,
);

/** The vitest module. @throws NOT_SUPPORTED when not running under vitest */
export function vitest(): VitestModule {
  if (loaded === undefined) {
    throw new DrkitError('NOT_SUPPORTED', 'drkit conformance suites run under vitest: call them from a vitest test file');
  }
  return loaded;
}
