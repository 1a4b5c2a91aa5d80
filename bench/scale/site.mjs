// Shared by the scale bench (bench/suites/scale.mjs), its child scripts (bench/scale/*.mjs)
// and the SIGKILL test's writer (test/snapshot/fixtures/volume-writer.mjs): how a site
// on real files is composed, and how its memory and disk use are read. Imports the BUILT
// package, as a user would.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { join } from 'node:path';
import * as node from '../../dist/adapters/node.js';
import { DeviceExtentStore } from '../../dist/adapters/index.js';
import { SnapshotTree } from '../../dist/snapshot/index.js';

/** The persistent MetaStore under test: the LMDB store once it ships, FileMetaStore before. */
export const MetaStoreClass = node.LmdbMetaStore ?? node.FileMetaStore;
export const metaStoreName = node.LmdbMetaStore ? 'LmdbMetaStore' : 'FileMetaStore';

/** Opens (creating when absent) the site's MetaStore; its files all live under `dir`. */
export async function openMeta(dir) {
  fs.mkdirSync(dir, { recursive: true });
  return MetaStoreClass.open({ path: join(dir, 'meta.db'), create: true });
}

const DATA_FILE = 'extents.data';
const META_DIR = 'meta';
/** First size of the extents file; DeviceExtentStore grows it as data arrives. */
const INITIAL_DATA_BYTES = 64 * 1024 * 1024;

/** Opens the extents file of a site, creating it the first time. */
export async function openDevice(siteDir) {
  fs.mkdirSync(siteDir, { recursive: true });
  const path = join(siteDir, DATA_FILE);
  if (fs.existsSync(path)) return node.RawFileBlockDevice.open({ path });
  return node.RawFileBlockDevice.open({ path, create: { byteLength: INITIAL_DATA_BYTES } });
}

/**
 * Device + MetaStore + DeviceExtentStore, closed in reverse order. `extentOptions` go to
 * DeviceExtentStore.open (the index builder raises maxPendingIndexOps: a bulk load of
 * millions of tiny extents is bounded by durable commits otherwise, ~10,000 extents/s).
 */
export async function openExtentSite(siteDir, extentOptions = {}) {
  const device = await openDevice(siteDir);
  const meta = await openMeta(join(siteDir, META_DIR));
  const extents = await DeviceExtentStore.open({ device, meta, ...extentOptions });
  return {
    device,
    meta,
    extents,
    async close() {
      await extents.close();
      await meta.close();
      await device.close();
    },
  };
}

/** A SnapshotTree on a site's files (device + meta + extent store + tree). */
export async function openSite(siteDir) {
  const base = await openExtentSite(siteDir);
  const tree = await SnapshotTree.open({ meta: base.meta, extents: base.extents });
  return {
    ...base,
    tree,
    async close() {
      await tree.close();
      await base.close();
    },
  };
}

/** Bytes the files under `path` occupy on disk (st_blocks * 512, like `du`), recursively. */
export function diskBytes(path) {
  const st = fs.statSync(path);
  if (!st.isDirectory()) return st.blocks * 512;
  let total = 0;
  for (const name of fs.readdirSync(path)) total += diskBytes(join(path, name));
  return total;
}

/** Disk bytes of a site's MetaStore (every file of its directory). */
export const metaDiskBytes = (siteDir) => diskBytes(join(siteDir, META_DIR));

/**
 * RssAnon and VmRSS in bytes from /proc/<pid>/status (`self` by default); undefined
 * fields when the process is gone.
 */
export function procMemory(pid = 'self') {
  let text;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return { rssAnonBytes: undefined, vmRssBytes: undefined };
  }
  const kib = (field) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  return { rssAnonBytes: kib('RssAnon'), vmRssBytes: kib('VmRSS') };
}

/** The testing kit's seeded generator (mulberry32): floats, integers below a bound, bytes. */
export { SeededPrng as Prng } from '../../dist/testing/core.js';

/**
 * Fingerprint of extent `i` of the extent-index point: the big-endian u64 `i`, then 24
 * bytes of sha256(u64 i, salt) (`salt` 1 gives fingerprints no build ever stores, for
 * misses). Fingerprints therefore sort by `i`, so building the index is a run of LMDB
 * appends (random fingerprints insert at ~7,000/s here: each insert dirties a page of a
 * tree far larger than one commit's batch); B-tree pages end up fuller than random
 * inserts leave them (~100% vs ~69%), which flatters metaDiskBytes but not open or RSS.
 */
export function indexFingerprint(i, salt = 0) {
  const b = Buffer.alloc(9);
  b.writeBigUInt64LE(BigInt(i));
  b[8] = salt;
  const out = new Uint8Array(32);
  new DataView(out.buffer).setBigUint64(0, BigInt(i));
  out.set(createHash('sha256').update(b).digest().subarray(0, 24), 8);
  return out;
}

/** Parses `--key=value` arguments of a child script into an object of strings. */
export function parseArgs(argv = process.argv.slice(2)) {
  const out = {};
  for (const a of argv) {
    const m = /^--([^=]+)=(.*)$/.exec(a);
    if (!m) throw new Error(`bad argument ${a} (expected --key=value)`);
    out[m[1]] = m[2];
  }
  return out;
}

/** The one JSON line a child script reports to its parent. */
export function report(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}
