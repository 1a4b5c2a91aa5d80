import { defineConfig, type Options } from 'tsup';
import { drkitShebang } from './src/cli/internal/process-settings.js';

const entries = {
  index: 'src/index.ts',
  'adapters/index': 'src/adapters/index.ts',
  'adapters/node': 'src/adapters/node.ts',
  'dedup/index': 'src/dedup/index.ts',
  'snapshot/index': 'src/snapshot/index.ts',
  'replication/index': 'src/replication/index.ts',
  'policy/index': 'src/policy/index.ts',
  'local/index': 'src/local/index.ts',
  'nbd/index': 'src/nbd/index.ts',
  'metro/index': 'src/metro/index.ts',
  // CommonJS door of drkit/testing: everything but the vitest suites.
  'testing/core': 'src/testing/core.ts',
};

const common: Options = {
  dts: true,
  sourcemap: true,
  splitting: true,
  target: 'node20',
  external: ['vitest', 'fast-check'],
  // import.meta.url in the CJS build (CodecPool resolves lz4-napi from its own location).
  shims: true,
};

// One ESM graph for every entry, so all subpaths share one copy of each module (one
// DrkitError class). The full drkit/testing is ESM only: its suites load vitest with a
// top-level await, which CommonJS cannot express.
export default defineConfig([
  { ...common, format: ['esm'], entry: { ...entries, 'testing/index': 'src/testing/index.ts' } },
  { ...common, format: ['cjs'], entry: entries },
  // The `drkit` command (package.json bin): one executable ESM file; it imports the library
  // through its own bundle, so it needs no declarations and no shared chunks. Its first
  // line starts node with the command's process settings (src/cli/internal/process-settings.ts).
  { ...common, format: ['esm'], entry: { cli: 'src/cli/main.ts' }, dts: false, splitting: false, banner: { js: drkitShebang() } },
]);
