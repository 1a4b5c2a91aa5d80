// LmdbMetaStore's mapped memory (issue #13 item 5): lmdb-js never unmaps a map it
// outgrew, so a store that grows from a small map keeps one mapping per doubling, each
// with its touched pages in the process's RSS. The default map is reserved large enough
// that a growing store stays in one mapping. Linux only (reads /proc/self/maps).
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LmdbMetaStore } from '../../src/adapters/node.js';
import { DEFAULT_LMDB_MAP_BYTES } from '../../src/adapters/lmdb-meta-store.js';
import { SeededPrng } from '../../src/testing/index.js';

const dir = mkdtempSync(join(tmpdir(), 'drkit-lmdb-mem-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const hasProcMaps = existsSync('/proc/self/maps');

/** Byte lengths of this process's mappings of `dataFile`. */
function mappingsOf(dataFile: string): number[] {
  const lengths: number[] = [];
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s+(.*)$/.exec(line);
    if (m !== null && m[3] === dataFile) lengths.push(parseInt(m[2]!, 16) - parseInt(m[1]!, 16));
  }
  return lengths;
}

/** A fresh store grown to ~4 MiB of records: five doublings past lmdb-js's 128 KiB start map. */
async function grownStore(path: string, mapSizeBytes?: number): Promise<LmdbMetaStore> {
  const store = await LmdbMetaStore.open({ path, create: true, ...(mapSizeBytes === undefined ? {} : { mapSizeBytes }) });
  const prng = new SeededPrng(13);
  for (let round = 0; round < 8; round++) {
    const ops = Array.from({ length: 1000 }, () => ({ kind: 'put' as const, key: prng.fill(new Uint8Array(33)), value: prng.fill(new Uint8Array(480)) }));
    await store.batch(ops, { sync: true });
  }
  return store;
}

describe.skipIf(!hasProcMaps)('LmdbMetaStore mapped memory', () => {
  it('keeps one mapping of the data file while the store grows, and the file stays the size of its data', async () => {
    const path = join(dir, 'default-map');
    const store = await grownStore(path);
    try {
      const dataFile = join(path, 'data.mdb');
      expect(mappingsOf(dataFile)).toEqual([DEFAULT_LMDB_MAP_BYTES]);
      const fileBytes = statSync(dataFile).size;
      expect(fileBytes).toBeGreaterThan(4 * 1024 * 1024);
      expect(fileBytes).toBeLessThan(32 * 1024 * 1024); // reserving the map allocated no disk
    } finally {
      await store.close();
    }
  });

  it('a map sized too small leaves one mapping per growth (what the default avoids)', async () => {
    const path = join(dir, 'small-map');
    const store = await grownStore(path, 128 * 1024);
    try {
      expect(mappingsOf(join(path, 'data.mdb')).length).toBeGreaterThan(3);
    } finally {
      await store.close();
    }
  });
});
