/**
 * Conformance suite for the Transport contract (src/adapters/transport.ts). Run it
 * against every transport you ship or write:
 *
 * ```ts
 * import { describeTransport } from 'drkit/testing';
 * describeTransport({
 *   name: 'TcpTransport',
 *   create: async () => ({ server: TcpTransport.create(), client: TcpTransport.create(), address: '127.0.0.1:0' }),
 * });
 * ```
 *
 * It checks ordering and integrity under random chunkings, backpressure (a writer never
 * runs far ahead of a slow reader), full duplex, clean close, destroy, refused and
 * aborted connects, aborted writes, and listener close.
 */
import { rejection, expectCode } from './internal/suite-assertions.js';
import { vitest } from './internal/vitest-api.js';
import fc from 'fast-check';
import type { Connection, Transport } from '../adapters/transport.js';
import { isDrkitError } from '../core/errors.js';
import {
  PatternStream,
  listenAccepting,
  readKeepingChunks,
  readPattern,
  sleep,
  writePattern,
  type AcceptingListener,
} from './internal/transport-fixtures.js';

/** What {@link TransportSuiteOptions.create} returns. */
export interface TransportSuiteSetup {
  /** The transport that listens. */
  server: Transport;
  /** The transport that connects (may be the same object). */
  client: Transport;
  /** Where `server` listens; port 0 is fine (the suite connects to `Listener.address`). */
  address: string;
  /** Runs after each test. */
  cleanup?: () => Promise<void>;
}

/** Options of {@link describeTransport}. */
export interface TransportSuiteOptions {
  /** Suite title. */
  name: string;
  /** Returns a fresh server/client pair for one test. */
  create: () => Promise<TransportSuiteSetup>;
  /** Seed of the property tests. @defaultValue 0x5eed */
  seed?: number;
  /** Runs of the random-chunking property. @defaultValue 12 */
  numRuns?: number;
  /** Bytes of the slow-reader transfer. @defaultValue 67108864 (64 MiB) */
  largeTransferBytes?: number;
  /**
   * How far (bytes whose write resolved minus bytes read) a writer may get ahead of a
   * slow reader: the transport's buffers plus the kernel's socket buffers on loopback.
   * @defaultValue 25165824 (24 MiB, well below a 64 MiB transfer that ran away)
   */
  maxOutstandingBytes?: number;
}

/** Size of the writes of the bulk tests: the 1 MiB the replication pipeline uses. */
const BULK_WRITE_BYTES = 1024 * 1024;

/**
 * Registers a vitest `describe` block that checks `create`'s transports against the
 * Transport contract.
 */
export function describeTransport(options: TransportSuiteOptions): void {
  const seed = options.seed ?? 0x5eed;
  const numRuns = options.numRuns ?? 12;
  const largeBytes = options.largeTransferBytes ?? 64 * 1024 * 1024;
  const maxOutstanding = options.maxOutstandingBytes ?? 24 * 1024 * 1024;
  const open: Connection[] = [];
  const listeners: AcceptingListener[] = [];
  let setup: TransportSuiteSetup | undefined;

  async function current(): Promise<TransportSuiteSetup> {
    setup ??= await options.create();
    return setup;
  }

  /** The test's setup and a listener on its address (call once per test: the address may be fixed). */
  async function env(): Promise<{ setup: TransportSuiteSetup; accepting: AcceptingListener }> {
    const s = await current();
    const accepting = await listenAccepting(s.server, s.address);
    listeners.push(accepting);
    return { setup: s, accepting };
  }

  /** A connected pair: [client end, server end]. */
  async function connected(): Promise<[Connection, Connection, AcceptingListener, TransportSuiteSetup]> {
    const { setup: s, accepting } = await env();
    const client = await s.client.connect(accepting.listener.address);
    const server = await accepting.accept();
    open.push(client, server);
    return [client, server, accepting, s];
  }

  vitest().describe(`Transport conformance: ${options.name}`, () => {
    vitest().afterEach(async () => {
      for (const c of open.splice(0)) c.destroy();
      for (const l of listeners.splice(0)) await l.listener.close();
      const s = setup;
      setup = undefined;
      await s?.cleanup?.();
    });

    vitest().it(`delivers bytes in order and intact for random chunkings (seed ${seed})`, async () => {
      const { setup: s, accepting } = await env();
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.integer({ min: 0, max: 70_000 }), { minLength: 1, maxLength: 24 }),
          fc.integer({ min: 1, max: 0x7fffffff }),
          async (chunkBytes, streamSeed) => {
            const client = await s.client.connect(accepting.listener.address);
            const server = await accepting.accept();
            open.push(client, server);
            const pattern = new PatternStream(streamSeed);
            const reading = readPattern(server, pattern);
            let offset = 0;
            for (const n of chunkBytes) {
              await client.write(pattern.slice(offset, n));
              offset += n;
            }
            await client.close();
            const got = await reading;
            vitest().expect(got.error).toBeUndefined();
            vitest().expect(got.byteLength).toBe(offset);
            vitest().expect(got.firstMismatch).toBe(-1);
          },
        ),
        { seed, numRuns },
      );
    });

    vitest().it('delivers the same bytes to a reader that lets chunks be reused (reuseChunks), fast or stalling', async () => {
      const [client, server] = await connected();
      const pattern = new PatternStream(seed + 7);
      const totalBytes = 8 * BULK_WRITE_BYTES;
      const writing = writePattern(server, pattern, totalBytes, 48_000 + (seed % 1000)).then(() => server.close());
      let chunks = 0;
      const got = await readPattern(
        client,
        pattern,
        async () => {
          // Stall now and then, so that reads land while earlier chunks wait in the queue.
          if (++chunks % 37 === 0) await sleep(5);
        },
        Infinity,
        { reuseChunks: true },
      );
      await writing;
      vitest().expect(got.error).toBeUndefined();
      vitest().expect(got.byteLength).toBe(totalBytes);
      vitest().expect(got.firstMismatch).toBe(-1);
    });

    vitest().it('never reuses the memory of chunks a reader keeps (no reuseChunks)', async () => {
      const [client, server] = await connected();
      const pattern = new PatternStream(seed + 8);
      const totalBytes = 8 * BULK_WRITE_BYTES;
      const writing = writePattern(server, pattern, totalBytes, 40_000).then(() => server.close());
      let chunks = 0;
      const got = await readKeepingChunks(client, pattern, async () => {
        if (++chunks % 29 === 0) await sleep(5);
      });
      await writing;
      vitest().expect(got.error).toBeUndefined();
      vitest().expect(got.byteLength).toBe(totalBytes);
      vitest().expect(got.firstMismatch, 'first byte of a kept chunk that changed after delivery').toBe(-1);
    });

    vitest().it('lets the writer get only a bounded distance ahead of a slow reader', async () => {
      const [client, server] = await connected();
      const pattern = new PatternStream(seed + 1);
      let writtenBytes = 0;
      let readBytes = 0;
      let maxAhead = 0;
      const writing = writePattern(client, pattern, largeBytes, BULK_WRITE_BYTES, (n) => {
        writtenBytes = n;
        maxAhead = Math.max(maxAhead, writtenBytes - readBytes);
      }).then(() => client.close());
      // Not reading at all for a while: a writer without backpressure runs to the end.
      await sleep(150);
      const aheadWhileStalled = writtenBytes;
      let nextStallAt = largeBytes / 8;
      const got = await readPattern(server, pattern, async (n) => {
        readBytes = n;
        if (n >= nextStallAt) {
          nextStallAt += largeBytes / 8;
          await sleep(20);
        }
      });
      await writing;
      vitest().expect(got.error).toBeUndefined();
      vitest().expect(got.byteLength).toBe(largeBytes);
      vitest().expect(got.firstMismatch).toBe(-1);
      vitest().expect(aheadWhileStalled, 'bytes accepted while nobody read').toBeLessThanOrEqual(maxOutstanding);
      vitest().expect(maxAhead, 'max bytes written ahead of the reader').toBeLessThanOrEqual(maxOutstanding);
    });

    vitest().it('carries both directions at once', async () => {
      const [client, server] = await connected();
      const byteLength = 4 * 1024 * 1024 + 123;
      const up = new PatternStream(seed + 2);
      const down = new PatternStream(seed + 3);
      // Each reader stops at byteLength: close() would end both directions at once.
      const [, , gotUp, gotDown] = await Promise.all([
        writePattern(client, up, byteLength, 100_000),
        writePattern(server, down, byteLength, 65_536),
        readPattern(server, up, undefined, byteLength),
        readPattern(client, down, undefined, byteLength),
      ]);
      vitest().expect(gotUp).toEqual({ byteLength, firstMismatch: -1 });
      vitest().expect(gotDown).toEqual({ byteLength, firstMismatch: -1 });
    });

    vitest().it('close() delivers everything, then ends the reader; later writes reject with CLOSED', async () => {
      const [client, server] = await connected();
      const pattern = new PatternStream(seed + 4);
      const byteLength = 3 * BULK_WRITE_BYTES + 17;
      const reading = readPattern(server, pattern);
      await writePattern(client, pattern, byteLength, 300_000);
      await client.close();
      await client.close();
      vitest().expect(await reading).toEqual({ byteLength, firstMismatch: -1 });
      await expectCode(client.write(new Uint8Array(8)), 'CLOSED', 'write after close');
      await expectCode(server.write(new Uint8Array(8)), ['CLOSED', 'CONNECTION_LOST'], 'write after the peer closed');
    });

    vitest().it('destroy() makes the peer read throw and write reject with CONNECTION_LOST', async () => {
      const [client, server] = await connected();
      const pattern = new PatternStream(seed + 5);
      await client.write(pattern.slice(0, 1000));
      const reading = readPattern(server, pattern);
      client.destroy();
      const got = await reading;
      vitest().expect(isDrkitError(got.error) ? got.error.code : String(got.error)).toBe('CONNECTION_LOST');
      await expectCode(server.write(new Uint8Array(8)), 'CONNECTION_LOST', 'peer write after destroy');
      await expectCode(client.write(new Uint8Array(8)), 'CONNECTION_LOST', 'own write after destroy');
      vitest().expect(() => client.destroy()).not.toThrow();
      await client.close();
    });

    vitest().it('reports the reason given to destroy() to local pending reads', async () => {
      const [client] = await connected();
      const reading = readPattern(client, new PatternStream(seed));
      const reason = new Error('shutting down');
      client.destroy(reason);
      vitest().expect((await reading).error).toBe(reason);
    });

    vitest().it('refuses a connection where nobody listens with CONNECTION_REFUSED', async () => {
      const { setup: s, accepting } = await env();
      const address = accepting.listener.address;
      await accepting.listener.close();
      await accepting.listener.close();
      await expectCode(s.client.connect(address), 'CONNECTION_REFUSED', 'connect after listener close');
    });

    vitest().it('keeps open connections when the listener closes', async () => {
      const [client, server, accepting] = await connected();
      await accepting.listener.close();
      const pattern = new PatternStream(seed + 6);
      const reading = readPattern(server, pattern);
      await writePattern(client, pattern, 200_000, 65_536);
      await client.close();
      vitest().expect(await reading).toEqual({ byteLength: 200_000, firstMismatch: -1 });
    });

    vitest().it('rejects with ABORTED: aborted connect, aborted write, write aborted while blocked', async () => {
      const [client, , accepting, s] = await connected();
      await expectCode(s.client.connect(accepting.listener.address, { signal: AbortSignal.abort() }), 'ABORTED', 'connect');
      await expectCode(client.write(new Uint8Array(8), { signal: AbortSignal.abort() }), 'ABORTED', 'write');
      // The peer never reads: writes must block, and the blocked one must honour abort.
      const controller = new AbortController();
      const chunk = new Uint8Array(BULK_WRITE_BYTES);
      let writtenBytes = 0;
      const writing = (async () => {
        while (writtenBytes < 4 * maxOutstanding) {
          await client.write(chunk, { signal: controller.signal });
          writtenBytes += chunk.byteLength;
        }
      })();
      await sleep(100);
      controller.abort();
      await expectCode(writing, 'ABORTED', 'write blocked by backpressure, then aborted');
      vitest().expect(writtenBytes, 'writes never blocked').toBeLessThan(4 * maxOutstanding);
    });

    vitest().it('rejects malformed arguments with INVALID_ARGUMENT and a second read()', async () => {
      const [client, , , s] = await connected();
      await expectCode(s.client.connect('no-port-here'), 'INVALID_ARGUMENT', 'connect without a port');
      await expectCode(s.client.connect('host:99999'), 'INVALID_ARGUMENT', 'connect to port 99999');
      await expectCode(s.server.listen('host:-1', { onConnection: () => undefined }), 'INVALID_ARGUMENT', 'listen on a bad port');
      await expectCode(s.server.listen(s.address, {} as never), 'INVALID_ARGUMENT', 'listen without onConnection');
      await expectCode(client.write('text' as never), 'INVALID_ARGUMENT', 'write of a string');
      client.read();
      vitest().expect(() => client.read()).toThrow(/once/);
    });

    vitest().it('destroys a connection whose onConnection throws', async () => {
      const s = await current();
      const listener = await s.server.listen(s.address, {
        onConnection: () => {
          // A user callback failing with a foreign error: the transport must cope.
          throw new TypeError('not today');
        },
      });
      try {
        // Depending on timing the connect itself fails, or the connection dies at once.
        const connecting = s.client.connect(listener.address);
        const err = await rejection(connecting);
        if (err === undefined) {
          const client = await connecting;
          open.push(client);
          const got = await readPattern(client, new PatternStream(seed));
          vitest().expect(isDrkitError(got.error) ? got.error.code : String(got.error)).toBe('CONNECTION_LOST');
        } else {
          vitest().expect(isDrkitError(err) ? err.code : String(err)).toBe('CONNECTION_LOST');
        }
      } finally {
        await listener.close();
      }
    });
  });
}
