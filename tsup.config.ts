import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'adapters/index': 'src/adapters/index.ts',
    'adapters/node': 'src/adapters/node.ts',
    'dedup/index': 'src/dedup/index.ts',
    'snapshot/index': 'src/snapshot/index.ts',
    'replication/index': 'src/replication/index.ts',
    'policy/index': 'src/policy/index.ts',
    'testing/index': 'src/testing/index.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  splitting: true,
  target: 'node20',
  external: ['vitest', 'fast-check'],
});
