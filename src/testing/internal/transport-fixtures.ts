/**
 * Helpers of the Transport conformance suite: a deterministic byte stream that any
 * offset of can be checked without storing it, and small async utilities.
 */
import type { Connection, ConnectionReadOptions, Listener, Transport } from '../../adapters/transport.js';
import { SeededPrng } from './seeded-prng.js';

/**
 * Period of {@link PatternStream}: 1 MiB + 7 bytes, odd so that power-of-two write and
 * read chunks never line up with it and a shifted or repeated chunk is caught.
 */
const PATTERN_PERIOD_BYTES = 1024 * 1024 + 7;

/** An endless seeded byte stream: writers slice it, readers verify against it. */
export class PatternStream {
  /** Two periods back to back, so any slice up to one period is a subarray. */
  readonly #bytes: Uint8Array;

  constructor(seed: number) {
    const prng = new SeededPrng(seed);
    this.#bytes = new Uint8Array(2 * PATTERN_PERIOD_BYTES);
    for (let i = 0; i < PATTERN_PERIOD_BYTES; i += 4) {
      const word = Math.floor(prng.next() * 0x100000000);
      for (let k = 0; k < 4 && i + k < PATTERN_PERIOD_BYTES; k++) this.#bytes[i + k] = (word >>> (8 * k)) & 0xff;
    }
    this.#bytes.copyWithin(PATTERN_PERIOD_BYTES, 0, PATTERN_PERIOD_BYTES);
  }

  /** The `byteLength` bytes at stream offset `byteOffset` (a view; byteLength <= 1 MiB). */
  slice(byteOffset: number, byteLength: number): Uint8Array {
    const start = byteOffset % PATTERN_PERIOD_BYTES;
    return this.#bytes.subarray(start, start + byteLength);
  }

  /** Index within `chunk` of its first byte differing from the stream at `byteOffset`, or -1. */
  mismatch(byteOffset: number, chunk: Uint8Array): number {
    let start = byteOffset % PATTERN_PERIOD_BYTES;
    const bytes = this.#bytes;
    for (let i = 0; i < chunk.byteLength; i++) {
      if (chunk[i] !== bytes[start]) return i;
      start = start + 1 === PATTERN_PERIOD_BYTES ? 0 : start + 1;
    }
    return -1;
  }
}

/** Writes `byteLength` bytes of `pattern` in `chunkBytes` writes; `onWritten` sees the total after each. */
export async function writePattern(
  connection: Connection,
  pattern: PatternStream,
  byteLength: number,
  chunkBytes: number,
  onWritten?: (writtenBytes: number) => void,
): Promise<void> {
  for (let offset = 0; offset < byteLength; offset += chunkBytes) {
    const n = Math.min(chunkBytes, byteLength - offset);
    await connection.write(pattern.slice(offset, n));
    onWritten?.(offset + n);
  }
}

/** Outcome of reading a connection to its end. */
export interface ReadOutcome {
  byteLength: number;
  /** First offset whose byte differed from the pattern, or -1. */
  firstMismatch: number;
  error?: unknown;
}

/**
 * Reads `connection` to its end (or until `stopAfterBytes`), checking against
 * `pattern`. `onChunk` may return a promise to slow the reader down.
 */
export async function readPattern(
  connection: Connection,
  pattern: PatternStream,
  onChunk?: (readBytes: number) => Promise<void> | void,
  stopAfterBytes = Infinity,
  readOptions?: ConnectionReadOptions,
): Promise<ReadOutcome> {
  let byteLength = 0;
  let firstMismatch = -1;
  try {
    for await (const chunk of connection.read(readOptions)) {
      if (firstMismatch < 0) {
        const at = pattern.mismatch(byteLength, chunk);
        if (at >= 0) firstMismatch = byteLength + at;
      }
      byteLength += chunk.byteLength;
      await onChunk?.(byteLength);
      if (byteLength >= stopAfterBytes) break;
    }
  } catch (error) {
    return { byteLength, firstMismatch, error };
  }
  return { byteLength, firstMismatch };
}

/**
 * Reads `connection` to its end keeping every chunk as delivered (no reuse promised), and
 * checks them against `pattern` only then: a transport that received into a chunk's
 * memory again after handing it out fails here.
 */
export async function readKeepingChunks(connection: Connection, pattern: PatternStream, onChunk?: () => Promise<void> | void): Promise<ReadOutcome> {
  const kept: Uint8Array[] = [];
  try {
    for await (const chunk of connection.read()) {
      kept.push(chunk);
      await onChunk?.();
    }
  } catch (error) {
    return { byteLength: kept.reduce((n, c) => n + c.byteLength, 0), firstMismatch: -1, error };
  }
  let byteLength = 0;
  let firstMismatch = -1;
  for (const chunk of kept) {
    if (firstMismatch < 0) {
      const at = pattern.mismatch(byteLength, chunk);
      if (at >= 0) firstMismatch = byteLength + at;
    }
    byteLength += chunk.byteLength;
  }
  return { byteLength, firstMismatch };
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A listener whose accepted connections can be awaited one by one. */
export interface AcceptingListener {
  readonly listener: Listener;
  /** The next accepted connection. */
  accept(): Promise<Connection>;
}

/** Listens on `address` and queues accepted connections. */
export async function listenAccepting(transport: Transport, address: string): Promise<AcceptingListener> {
  const ready: Connection[] = [];
  const waiting: ((c: Connection) => void)[] = [];
  const listener = await transport.listen(address, {
    onConnection: (connection) => {
      const waiter = waiting.shift();
      if (waiter) waiter(connection);
      else ready.push(connection);
    },
  });
  return {
    listener,
    accept: () => {
      const c = ready.shift();
      return c ? Promise.resolve(c) : new Promise<Connection>((resolve) => waiting.push(resolve));
    },
  };
}

export { rejection } from './suite-assertions.js';
