// Imports the BUILT package the way a user would: `import 'drkit/...'` and
// `require('drkit/...')` from a separate project whose node_modules links to this one,
// and type-checks a TypeScript consumer against the emitted .d.ts/.d.cts files.
// `npm test` builds dist/ before vitest runs.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(__dirname, '../..');
const subpaths = ['drkit', 'drkit/adapters', 'drkit/adapters/node', 'drkit/dedup', 'drkit/snapshot', 'drkit/replication', 'drkit/policy', 'drkit/local', 'drkit/nbd', 'drkit/testing'];
let dir = '';

beforeAll(() => {
  if (!existsSync(join(root, 'dist/index.js'))) throw new Error('dist/ missing: run `npm run build` first (npm test does)');
  dir = mkdtempSync(join(tmpdir(), 'drkit-consumer-'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(root, join(dir, 'node_modules', 'drkit'), 'dir');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const run = (file: string, source: string): string => {
  writeFileSync(join(dir, file), source);
  return execFileSync(process.execPath, [join(dir, file)], { cwd: dir, encoding: 'utf8' });
};

describe('built package', () => {
  it('imports every subpath from ESM', () => {
    const src = `${subpaths.map((p, i) => `import * as m${i} from '${p}';`).join('\n')}
import { DrkitError } from 'drkit';
import { MemoryBlockDevice } from 'drkit/adapters';
import { describeBlockDevice, FaultyBlockDevice } from 'drkit/testing';
const dev = await MemoryBlockDevice.create({ byteLength: 4096 });
await dev.write(0, new Uint8Array([1, 2, 3]));
const back = await dev.read(0, 3);
let code = '';
try { await dev.read(4095, 2); } catch (e) { code = e instanceof DrkitError ? e.code : 'foreign'; }
// Outside vitest the suites refuse with a coded error; the rest of drkit/testing works.
let suite = '';
try { describeBlockDevice({ name: 'x', create: async () => dev }); } catch (e) { suite = e.code; }
const faulty = new FaultyBlockDevice(dev, { seed: 1 });
console.log(JSON.stringify({ back: [...back], code, suite, faulty: faulty.byteLength, testing: typeof describeBlockDevice, n: [${subpaths.map((_, i) => `m${i}`).join(',')}].length }));`;
    expect(JSON.parse(run('esm.mjs', src))).toEqual({ back: [1, 2, 3], code: 'OUT_OF_RANGE', suite: 'NOT_SUPPORTED', faulty: 4096, testing: 'function', n: subpaths.length });
  });

  it('requires every subpath from CommonJS', () => {
    const src = `${subpaths.map((p, i) => `const m${i} = require('${p}');`).join('\n')}
const { DrkitError } = require('drkit');
const { MemoryBlockDevice } = require('drkit/adapters');
const { FaultyBlockDevice, describeBlockDevice } = require('drkit/testing');
(async () => {
  const dev = await MemoryBlockDevice.create({ byteLength: 4096 });
  let code = '';
  try { await dev.write(4096, new Uint8Array(1)); } catch (e) { code = e instanceof DrkitError ? e.code : 'foreign'; }
  const faulty = new FaultyBlockDevice(dev, { seed: 1 });
  console.log(JSON.stringify({ code, faulty: faulty.byteLength, suites: typeof describeBlockDevice, n: [${subpaths.map((_, i) => `m${i}`).join(',')}].length }));
})();`;
    expect(JSON.parse(run('cjs.cjs', src))).toEqual({ code: 'OUT_OF_RANGE', faulty: 4096, suites: 'undefined', n: subpaths.length });
  });

  it('type-checks a TypeScript consumer against the emitted declarations (ESM and CJS)', () => {
    writeFileSync(
      join(dir, 'consumer.mts'),
      `import { DrkitError, type ErrorCode } from 'drkit';
import type { BlockDevice } from 'drkit/adapters';
import { MemoryBlockDevice } from 'drkit/adapters';
export async function f(): Promise<ErrorCode | undefined> {
  const dev: BlockDevice = await MemoryBlockDevice.create({ byteLength: 512 });
  try { await dev.read(0, 1024); } catch (e) { if (e instanceof DrkitError) return e.code; }
  return undefined;
}
`,
    );
    writeFileSync(
      join(dir, 'consumer.cts'),
      `import { DrkitError } from 'drkit';
import { MemoryBlockDevice } from 'drkit/adapters';
export const make = (): Promise<MemoryBlockDevice> => MemoryBlockDevice.create({ byteLength: 512 });
export const isErr = (e: unknown): boolean => e instanceof DrkitError;
`,
    );
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', noEmit: true, skipLibCheck: false, types: ['node'], typeRoots: [join(root, 'node_modules/@types')] }, files: ['consumer.mts', 'consumer.cts'] }),
    );
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    const out = (() => {
      try {
        return execFileSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], { cwd: dir, encoding: 'utf8' });
      } catch (e) {
        return String((e as { stdout?: string }).stdout ?? e);
      }
    })();
    expect(out).toBe('');
  });
});
