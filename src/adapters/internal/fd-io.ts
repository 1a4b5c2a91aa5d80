/**
 * Promise wrappers over node:fs callback calls on a raw file descriptor, with the loops
 * that turn short reads and writes into complete ones or coded errors. The callback API
 * is used instead of `FileHandle` because it is measurably cheaper per call here
 * (64 KiB writes: ~0.95 GB/s callback vs ~0.8 GB/s FileHandle, same run).
 */
import fs from 'node:fs';
import { DrkitError, toDrkitError } from '../../core/errors.js';

/** Writes every chunk back to back starting at `byteOffset`, resuming after short writes. @throws IO_ERROR, SHORT_IO, NO_SPACE */
export async function writeFully(fd: number, chunks: readonly Uint8Array[], byteOffset: number): Promise<void> {
  let rest = chunks.slice();
  let position = byteOffset;
  while (rest.length > 0) {
    const asked = rest.reduce((n, c) => n + c.byteLength, 0);
    const written = await new Promise<number>((resolve, reject) => {
      const done = (err: NodeJS.ErrnoException | null, n: number): void => (err ? reject(err) : resolve(n));
      if (rest.length === 1) {
        const c = rest[0] as Uint8Array;
        fs.write(fd, c, 0, c.byteLength, position, done);
      } else fs.writev(fd, rest as NodeJS.ArrayBufferView[], position, done);
    }).catch((err: unknown) => {
      throw toDrkitError(err, 'IO_ERROR', 'write failed', { byteOffset: position, byteLength: asked });
    });
    if (written === asked) return;
    if (written <= 0) {
      throw new DrkitError('SHORT_IO', `write made no progress at byte ${position}`, { data: { byteOffset: position, byteLength: asked } });
    }
    position += written;
    rest = dropBytes(rest, written);
  }
}

/**
 * Fills every buffer back to back from `byteOffset`, resuming after short reads.
 * @throws SHORT_IO when end of file comes first, IO_ERROR
 */
export async function readFully(fd: number, buffers: readonly Uint8Array[], byteOffset: number): Promise<void> {
  let rest = buffers.filter((b) => b.byteLength > 0);
  let position = byteOffset;
  while (rest.length > 0) {
    const asked = rest.reduce((n, c) => n + c.byteLength, 0);
    const got = await new Promise<number>((resolve, reject) => {
      const done = (err: NodeJS.ErrnoException | null, n: number): void => (err ? reject(err) : resolve(n));
      if (rest.length === 1) {
        const b = rest[0] as Uint8Array;
        fs.read(fd, b, 0, b.byteLength, position, done);
      } else fs.readv(fd, rest as NodeJS.ArrayBufferView[], position, done);
    }).catch((err: unknown) => {
      throw toDrkitError(err, 'IO_ERROR', 'read failed', { byteOffset: position, byteLength: asked });
    });
    if (got === asked) return;
    if (got <= 0) {
      throw new DrkitError('SHORT_IO', `read hit end of file at byte ${position} with ${asked} bytes still to read`, {
        data: { byteOffset: position, byteLength: asked },
      });
    }
    position += got;
    rest = dropBytes(rest, got);
  }
}

function dropBytes(chunks: Uint8Array[], byteCount: number): Uint8Array[] {
  let skip = byteCount;
  let i = 0;
  while (i < chunks.length && skip >= (chunks[i] as Uint8Array).byteLength) skip -= (chunks[i++] as Uint8Array).byteLength;
  const out = chunks.slice(i);
  if (skip > 0 && out.length > 0) out[0] = (out[0] as Uint8Array).subarray(skip);
  return out;
}

/** Promise form of a node:fs callback call that yields nothing useful. */
export function fsCall(fn: (cb: (err: NodeJS.ErrnoException | null) => void) => void, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => fn((err) => (err ? reject(err) : resolve()))).catch((err: unknown) => {
    throw toDrkitError(err, 'IO_ERROR', `${what} failed`);
  });
}

/**
 * Length of whatever `fd` reads from, found by reading single bytes: double a probe
 * offset until a read returns nothing, then bisect. Needed for block special files,
 * whose `fstat` size is 0 and for which Node exposes neither `lseek(SEEK_END)` nor the
 * BLKGETSIZE64 ioctl. Costs about 2·log2(length) one-byte reads (≈ 70 for 64 GiB).
 * @throws IO_ERROR
 */
export async function probeReadableLength(fd: number): Promise<number> {
  const one = new Uint8Array(1);
  const readable = (position: number): Promise<boolean> =>
    new Promise<boolean>((resolve, reject) => fs.read(fd, one, 0, 1, position, (err, n) => (err ? reject(err) : resolve(n === 1)))).catch(
      (err: unknown) => {
        throw toDrkitError(err, 'IO_ERROR', 'length probe failed', { byteOffset: position });
      },
    );
  if (!(await readable(0))) return 0;
  let lo = 0; // the byte at lo exists
  let hi = 1;
  while (await readable(hi)) {
    lo = hi;
    hi *= 2;
    if (hi > Number.MAX_SAFE_INTEGER) throw new DrkitError('IO_ERROR', 'length probe found no end of device');
  }
  // Invariant: byte lo exists, byte hi does not; the length is hi once they meet.
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (await readable(mid)) lo = mid;
    else hi = mid;
  }
  return hi;
}
