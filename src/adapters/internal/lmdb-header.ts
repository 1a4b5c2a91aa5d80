/**
 * A pre-check of an LMDB data file's two meta pages. lmdb-js 3.5 crashes the process
 * (SIGSEGV) instead of returning MDB_INVALID when `data.mdb` is not an LMDB file, so
 * the store validates the header itself before handing the file to the native code.
 * It only catches files that are not LMDB at all (or of another LMDB data version);
 * damage deeper in the file is LMDB's to find.
 */
import { closeSync, openSync, readSync, fstatSync } from 'node:fs';
import { DrkitError } from '../../core/errors.js';

const MDB_MAGIC = 0xbeefc0de;
/** LMDB data format version of the lmdb-js 3.x library (MDB_DATA_VERSION). */
const MDB_DATA_VERSION = 2;
/** Offsets inside a meta page: the 24-byte page header, then magic, version, address, map size, then the free DB whose first field holds the page size. */
const MAGIC_OFFSET = 24;
const VERSION_OFFSET = 28;
const PAGE_SIZE_OFFSET = 48;
const MIN_PAGE_BYTES = 512;
const MAX_PAGE_BYTES = 64 * 1024;

/**
 * Throws unless `dataFile` is empty (LMDB initialises it) or starts with two valid meta
 * pages of a supported version.
 * @throws CORRUPTION (not an LMDB file), FORMAT_VERSION (another LMDB data version), fs errors
 */
export function checkLmdbHeader(dataFile: string): void {
  const fd = openSync(dataFile, 'r');
  try {
    const fileBytes = fstatSync(fd).size;
    if (fileBytes === 0) return;
    const page = Buffer.alloc(PAGE_SIZE_OFFSET + 4);
    const readMeta = (at: number): { magic: number; version: number; pageBytes: number } | undefined => {
      if (readSync(fd, page, 0, page.length, at) !== page.length) return undefined;
      return { magic: page.readUInt32LE(MAGIC_OFFSET), version: page.readUInt32LE(VERSION_OFFSET), pageBytes: page.readUInt32LE(PAGE_SIZE_OFFSET) };
    };
    const first = readMeta(0);
    const notLmdb = (): DrkitError => new DrkitError('CORRUPTION', `${dataFile} is not an LMDB data file`, { data: { path: dataFile } });
    if (first === undefined || first.magic !== MDB_MAGIC) throw notLmdb();
    if (first.version !== MDB_DATA_VERSION) {
      throw new DrkitError('FORMAT_VERSION', `${dataFile} has LMDB data version ${first.version}; this build reads ${MDB_DATA_VERSION}`);
    }
    const { pageBytes } = first;
    if (pageBytes < MIN_PAGE_BYTES || pageBytes > MAX_PAGE_BYTES || (pageBytes & (pageBytes - 1)) !== 0 || fileBytes < 2 * pageBytes) throw notLmdb();
    const second = readMeta(pageBytes);
    if (second === undefined || second.magic !== MDB_MAGIC || second.version !== MDB_DATA_VERSION) throw notLmdb();
  } finally {
    closeSync(fd);
  }
}
