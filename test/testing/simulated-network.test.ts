import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Connection, Transport } from '../../src/adapters/transport.js';
import { VirtualClock } from '../../src/adapters/virtual-clock.js';
import { concatBytes, equalBytes } from '../../src/core/bytes.js';
import { isDrkitError } from '../../src/core/errors.js';
import { SeededPrng } from '../../src/testing/internal/seeded-prng.js';
import { SimulatedNetwork, type LinkOptions } from '../../src/testing/simulated-network.js';
import { describeTransport } from '../../src/testing/describe-transport.js';

// The Transport contract on a lossy, jittery, reordering simulated WAN. The suite cannot
// advance the clock, so autoAdvance() moves it whenever the process is idle.
describeTransport({
  name: 'SimulatedNetwork (autoAdvance)',
  create: async () => {
    const clock = new VirtualClock();
    const network = new SimulatedNetwork({
      clock,
      seed: 0x51a,
      defaults: { latencyMs: 5, jitterMs: 5, bandwidthBytesPerSec: 1e9, lossProbability: 0.01, reorderProbability: 0.1 },
    });
    const auto = network.autoAdvance();
    return { server: network.transport('siteB'), client: network.transport('siteA'), address: 'siteB:7000', cleanup: () => auto.stop() };
  },
  largeTransferBytes: 16 * 1024 * 1024,
  // 1 MiB send buffer + one 64 KiB segment, with room for the reader's own lag
  maxOutstandingBytes: 2 * 1024 * 1024,
});

/** Advances `clock` in `stepMs` steps until `promise` settles (timers still fire at their exact due times). */
async function drive<T>(clock: VirtualClock, promise: Promise<T>, limitMs = 3_600_000, stepMs = 50): Promise<T> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  const startMs = clock.now();
  while (!settled) {
    if (clock.now() - startMs > limitMs) throw new Error(`not settled within ${limitMs} virtual ms`);
    await clock.advance(stepMs);
  }
  return promise;
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return isDrkitError(err) ? err.code : `foreign: ${String(err)}`;
  }
  return 'resolved';
}

async function readAll(connection: Connection): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of connection.read()) parts.push(chunk);
  return concatBytes(parts);
}

function seededBytes(seed: number, byteLength: number): Uint8Array {
  const prng = new SeededPrng(seed);
  const bytes = new Uint8Array(byteLength);
  for (let i = 0; i < byteLength; i++) bytes[i] = prng.below(256);
  return bytes;
}

/** A listener on `server` that hands accepted connections to the test, in order. */
async function accepting(transport: Transport, address: string): Promise<{ accepted: Connection[]; next: () => Promise<Connection> }> {
  const accepted: Connection[] = [];
  const waiters: ((c: Connection) => void)[] = [];
  await transport.listen(address, {
    onConnection: (connection) => {
      accepted.push(connection);
      waiters.shift()?.(connection);
    },
  });
  let taken = 0;
  return {
    accepted,
    next: () => {
      const ready = accepted[taken];
      taken++;
      return ready !== undefined ? Promise.resolve(ready) : new Promise((resolve) => waiters.push(resolve));
    },
  };
}

describe('SimulatedNetwork', () => {
  it('keeps every connection ordered and intact under loss, jitter, reorder and a bandwidth limit', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
          latencyMs: fc.integer({ min: 0, max: 40 }),
          jitterMs: fc.integer({ min: 0, max: 40 }),
          bandwidthBytesPerSec: fc.constantFrom(Infinity, 200_000, 5_000_000),
          lossProbability: fc.constantFrom(0, 0.05, 0.3),
          reorderProbability: fc.constantFrom(0, 0.3),
          sendBufferBytes: fc.constantFrom(1, 10_000, 1 << 20),
          // per connection: the byte lengths of its writes (some beyond one 64 KiB segment)
          writes: fc.array(fc.array(fc.integer({ min: 0, max: 150_000 }), { maxLength: 5 }), { minLength: 1, maxLength: 3 }),
        }),
        async ({ seed, writes, sendBufferBytes, ...link }) => {
          const clock = new VirtualClock();
          const network = new SimulatedNetwork({ clock, seed, defaults: link, sendBufferBytes });
          const server = await accepting(network.transport('b'), 'b:7000');
          const client = network.transport('a');
          // Connect one at a time, so that the i-th accepted connection is the i-th client's.
          const pairs: [Connection, Connection][] = [];
          for (const _ of writes) pairs.push([await drive(clock, client.connect('b:7000')), await server.next()]);
          const jobs = writes.map(async (lengths, i) => {
            const [connection, peer] = pairs[i]!;
            const received = readAll(peer);
            const expected = lengths.map((byteLength, j) => seededBytes(seed + i * 100 + j, byteLength));
            for (const bytes of expected) await connection.write(bytes);
            await connection.close();
            const got = await received;
            expect(equalBytes(got, concatBytes(expected)), `seed ${seed} connection ${i}`).toBe(true);
            await peer.close();
          });
          await drive(clock, Promise.all(jobs));
          const totalBytes = writes.flat().reduce((a, b) => a + b, 0);
          const stats = network.linkStats('a', 'b');
          expect(stats.bytesSent).toBe(totalBytes);
          expect(stats.bytesDelivered).toBe(totalBytes);
          expect(stats.bytesRetransmitted).toBeGreaterThanOrEqual(link.lossProbability === 0 ? 0 : stats.segmentsLost > 0 ? 1 : 0);
          if (link.lossProbability === 0) expect(stats.segmentsLost).toBe(0);
          await drive(clock, clock.sleep(1_000));
          expect(network.openConnectionCount).toBe(0);
        },
      ),
      { seed: 0x5e7, numRuns: 60 },
    );
  });

  it('takes about one virtual second to move 1 MB over a 1 MB/s link', async () => {
    const clock = new VirtualClock();
    const network = new SimulatedNetwork({ clock, seed: 1, defaults: { latencyMs: 5, bandwidthBytesPerSec: 1_000_000 } });
    const server = await accepting(network.transport('b'), 'b:1');
    const connection = await drive(clock, network.transport('a').connect('b:1'), 1_000, 1);
    const peer = await server.next();
    const startMs = clock.now();
    let doneAtMs = -1;
    const received = (async () => {
      const bytes = await readAll(peer);
      doneAtMs = clock.now();
      return bytes;
    })();
    const payload = seededBytes(7, 1_000_000);
    const sent = (async () => {
      await connection.write(payload);
      await connection.close();
    })();
    await drive(clock, Promise.all([sent, received]), 10_000, 1);
    expect(equalBytes(await received, payload)).toBe(true);
    // 1000 ms of serialisation + 5 ms latency (+ rounding to whole ms)
    expect(doneAtMs - startMs).toBeGreaterThanOrEqual(1_005);
    expect(doneAtMs - startMs).toBeLessThanOrEqual(1_007);
    expect(network.linkStats('a', 'b').bytesDelivered).toBe(1_000_000);
    expect(network.linkStats('b', 'a').bytesSent).toBe(0);
  });

  it('shares a link between connections: two 500 kB transfers also take about one second', async () => {
    const clock = new VirtualClock();
    const network = new SimulatedNetwork({ clock, seed: 2, defaults: { latencyMs: 0 } });
    network.setLink('a', 'b', { bandwidthBytesPerSec: 1_000_000 });
    const server = await accepting(network.transport('b'), 'b:1');
    const connections = await drive(clock, Promise.all([network.transport('a').connect('b:1'), network.transport('a').connect('b:1')]), 100, 1);
    const startMs = clock.now();
    const finishes: number[] = [];
    const jobs = connections.map(async (connection, i) => {
      const peer = await server.next();
      const received = readAll(peer).then((bytes) => (finishes.push(clock.now()), bytes));
      await connection.write(seededBytes(i, 500_000));
      await connection.close();
      expect((await received).byteLength).toBe(500_000);
    });
    await drive(clock, Promise.all(jobs), 10_000, 1);
    // Interleaved segments: both finish near the end, not one at 0.5 s and one at 1 s.
    for (const atMs of finishes) expect(atMs - startMs).toBeGreaterThan(900);
    expect(Math.max(...finishes) - startMs).toBeLessThanOrEqual(1_002);
  });

  it('bounds the bytes in flight of a fast sender over a slow link (backpressure)', async () => {
    const clock = new VirtualClock();
    const sendBufferBytes = 100_000;
    const network = new SimulatedNetwork({ clock, seed: 3, sendBufferBytes, defaults: { latencyMs: 20, bandwidthBytesPerSec: 500_000 } });
    const server = await accepting(network.transport('b'), 'b:1');
    const connection = await drive(clock, network.transport('a').connect('b:1'));
    const peer = await server.next();
    let acceptedBytes = 0;
    let readBytes = 0;
    let maxAheadBytes = 0;
    const writer = (async () => {
      for (let i = 0; i < 200; i++) {
        await connection.write(new Uint8Array(10_000));
        acceptedBytes += 10_000;
        maxAheadBytes = Math.max(maxAheadBytes, acceptedBytes - readBytes);
      }
      await connection.close();
    })();
    const reader = (async () => {
      for await (const chunk of peer.read()) readBytes += chunk.byteLength;
    })();
    await drive(clock, Promise.all([writer, reader]), 60_000, 5);
    expect(readBytes).toBe(2_000_000);
    // write() never runs ahead of the reader by more than the send buffer plus one write
    expect(maxAheadBytes).toBeLessThanOrEqual(sendBufferBytes + 10_000);
    expect(maxAheadBytes).toBeGreaterThanOrEqual(sendBufferBytes / 2);
  });

  it('stalls a writer whose peer does not read, and resumes it when the peer reads', async () => {
    const clock = new VirtualClock();
    const network = new SimulatedNetwork({ clock, seed: 4, sendBufferBytes: 64 * 1024 });
    const server = await accepting(network.transport('b'), 'b:1');
    const connection = await drive(clock, network.transport('a').connect('b:1'));
    const peer = await server.next();
    let written = 0;
    const writer = (async () => {
      for (let i = 0; i < 64; i++) {
        await connection.write(new Uint8Array(16 * 1024));
        written++;
      }
    })();
    await clock.advance(10_000);
    expect(written).toBeLessThanOrEqual(5); // 64 KiB window + one write
    const reader = readAll(peer);
    await drive(clock, writer);
    expect(written).toBe(64);
    await connection.close();
    expect((await drive(clock, reader)).byteLength).toBe(64 * 16 * 1024);
  });

  it('retransmits lost segments at a cost in time, and breaks the connection when a segment is never delivered', async () => {
    const timeFor = async (link: LinkOptions): Promise<{ elapsedMs: number; lost: number }> => {
      const clock = new VirtualClock();
      const network = new SimulatedNetwork({ clock, seed: 5, defaults: link });
      const server = await accepting(network.transport('b'), 'b:1');
      const connection = await drive(clock, network.transport('a').connect('b:1'));
      const peer = await server.next();
      const startMs = clock.now();
      const received = readAll(peer);
      await drive(clock, connection.write(new Uint8Array(20 * 64 * 1024)).then(() => connection.close()));
      expect((await drive(clock, received)).byteLength).toBe(20 * 64 * 1024);
      const stats = network.linkStats('a', 'b');
      expect(stats.bytesRetransmitted).toBe(stats.segmentsLost * 64 * 1024);
      return { elapsedMs: clock.now() - startMs, lost: stats.segmentsLost };
    };
    const clean = await timeFor({ latencyMs: 10 });
    const lossy = await timeFor({ latencyMs: 10, lossProbability: 0.2 });
    expect(clean.lost).toBe(0);
    expect(lossy.lost).toBeGreaterThan(0);
    expect(lossy.elapsedMs).toBeGreaterThanOrEqual(clean.elapsedMs + 200); // at least one retransmission timeout

    const clock = new VirtualClock();
    const network = new SimulatedNetwork({ clock, seed: 5, defaults: { latencyMs: 10, lossProbability: 1 } });
    const server = await accepting(network.transport('b'), 'b:1');
    const connection = await drive(clock, network.transport('a').connect('b:1'));
    const peer = await server.next();
    const reading = codeOf(readAll(peer));
    await connection.write(new Uint8Array(100));
    expect(await drive(clock, reading)).toBe('CONNECTION_LOST');
    expect(await codeOf(connection.write(new Uint8Array(1)))).toBe('CONNECTION_LOST');
    expect(network.linkStats('a', 'b').segmentsLost).toBe(16);
  });

  it('lets segments of different connections overtake each other, never within one', async () => {
    const clock = new VirtualClock();
    const network = new SimulatedNetwork({ clock, seed: 6, defaults: { latencyMs: 10, reorderProbability: 0.5 } });
    const server = await accepting(network.transport('b'), 'b:1');
    const conns: Connection[] = [];
    const peers: Connection[] = [];
    for (let i = 0; i < 2; i++) {
      conns.push(await drive(clock, network.transport('a').connect('b:1')));
      peers.push(await server.next());
    }
    const arrivals: string[] = [];
    const readers = peers.map(async (peer, i) => {
      const parts: Uint8Array[] = [];
      for await (const chunk of peer.read()) {
        arrivals.push(`${i}:${chunk[0]}`);
        parts.push(chunk);
      }
      return concatBytes(parts);
    });
    // Alternate 64 KiB segments on both connections, each tagged with its index.
    for (let k = 0; k < 40; k++) {
      void conns[k % 2]!.write(new Uint8Array(64 * 1024).fill(Math.floor(k / 2)));
    }
    const closed = Promise.all(conns.map((c) => c.close()));
    const [got] = await drive(clock, Promise.all([Promise.all(readers), closed]));
    for (const bytes of got) {
      for (let s = 0; s < 20; s++) expect(bytes[s * 64 * 1024]).toBe(s);
    }
    expect(network.linkStats('a', 'b').segmentsReordered).toBeGreaterThan(0);
    // Some segment of one connection arrived after a later-sent segment of the other.
    const sentOrder = Array.from({ length: 40 }, (_, k) => `${k % 2}:${Math.floor(k / 2)}`);
    expect(arrivals).not.toEqual(sentOrder);
    expect([...arrivals].sort()).toEqual([...sentOrder].sort());
  });

  it('breaks connections at random points with resetProbability; the receiver holds a prefix', async () => {
    for (const seed of [11, 12, 13, 14, 15]) {
      const clock = new VirtualClock();
      const network = new SimulatedNetwork({ clock, seed, defaults: { latencyMs: 3, resetProbability: 0.1 } });
      const server = await accepting(network.transport('b'), 'b:1');
      const connection = await drive(clock, network.transport('a').connect('b:1'));
      const peer = await server.next();
      const payload = seededBytes(seed, 100 * 1024 * 4);
      const parts: Uint8Array[] = [];
      const reading = (async () => {
        for await (const chunk of peer.read()) parts.push(chunk);
      })();
      const writing = (async () => {
        for (let o = 0; o < payload.byteLength; o += 4096) await connection.write(payload.subarray(o, o + 4096));
        await connection.close();
      })();
      const [writeCode, readCode] = await drive(clock, Promise.all([codeOf(writing), codeOf(reading)]));
      const got = concatBytes(parts);
      expect(equalBytes(got, payload.subarray(0, got.byteLength)), `seed ${seed}`).toBe(true);
      if (network.linkStats('a', 'b').connectionsBroken > 0) {
        expect(readCode, `seed ${seed}`).toBe('CONNECTION_LOST');
        expect(got.byteLength).toBeLessThan(payload.byteLength);
      } else {
        expect([writeCode, readCode]).toEqual(['resolved', 'resolved']);
      }
    }
  });

  it('partitions break connections and refuse new ones; heal restores connectivity', async () => {
    const clock = new VirtualClock();
    const network = new SimulatedNetwork({ clock, seed: 7, connectTimeoutMs: 3_000 });
    const server = await accepting(network.transport('b'), 'b:1');
    await accepting(network.transport('c'), 'c:1');
    const ab = await drive(clock, network.transport('a').connect('b:1'));
    const abPeer = await server.next();
    const ac = await drive(clock, network.transport('a').connect('c:1'));
    const abRead = codeOf(readAll(abPeer));
    network.partition(['a'], ['b']);
    await clock.advance(0);
    expect(await abRead).toBe('CONNECTION_LOST');
    expect(await codeOf(ab.write(new Uint8Array(1)))).toBe('CONNECTION_LOST');
    await ac.write(new Uint8Array(1)); // a-c is not partitioned

    const startMs = clock.now();
    let failedAtMs = -1;
    const refused = codeOf(network.transport('a').connect('b:1').finally(() => (failedAtMs = clock.now())));
    expect(await drive(clock, refused, 10_000, 10)).toBe('CONNECTION_REFUSED');
    expect(failedAtMs - startMs).toBe(3_000);
    expect(await drive(clock, codeOf(network.transport('b').connect('a:1', { timeoutMs: 50 })))).toBe('CONNECTION_REFUSED');

    network.heal();
    const again = await drive(clock, network.transport('a').connect('b:1'));
    const againPeer = await server.next();
    const received = readAll(againPeer);
    await again.write(Uint8Array.of(1, 2, 3));
    await again.close();
    expect([...(await drive(clock, received))]).toEqual([1, 2, 3]);
    expect(() => network.partition(['a', 'b'], ['b'])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('crashHost breaks all its connections and listeners; restartHost lets it listen again', async () => {
    const clock = new VirtualClock();
    const network = new SimulatedNetwork({ clock, seed: 8 });
    const server = await accepting(network.transport('b'), 'b:1');
    const client = await drive(clock, network.transport('a').connect('b:1'));
    const peer = await server.next();
    const clientRead = codeOf(readAll(client));
    const peerRead = codeOf(readAll(peer));
    network.crashHost('b');
    await clock.advance(0);
    expect(await clientRead).toBe('CONNECTION_LOST');
    expect(await peerRead).toBe('CONNECTION_LOST');
    expect(network.openConnectionCount).toBe(0);
    expect(await drive(clock, codeOf(network.transport('a').connect('b:1')))).toBe('CONNECTION_REFUSED');
    expect(await codeOf(network.transport('b').listen('b:1', { onConnection: () => undefined }))).toBe('CRASHED');
    expect(await codeOf(network.transport('b').connect('a:1'))).toBe('CRASHED');
    network.restartHost('b');
    const restarted = await accepting(network.transport('b'), 'b:1');
    const reconnected = await drive(clock, network.transport('a').connect('b:1'));
    expect(reconnected.peer.address).toBe('b:1');
    expect((await restarted.next()).peer.address).toMatch(/^a:\d+$/);
  });

  it('refuses connects to closed ports, times out slow handshakes, closes cleanly', async () => {
    const clock = new VirtualClock();
    const network = new SimulatedNetwork({ clock, seed: 9, defaults: { latencyMs: 100 } });
    const a = network.transport('a');
    let refusedAtMs = -1;
    const refused = codeOf(a.connect('b:9').finally(() => (refusedAtMs = clock.now())));
    expect(await drive(clock, refused, 1_000, 1)).toBe('CONNECTION_REFUSED');
    expect(refusedAtMs).toBe(200); // one round trip
    const listener = await network.transport('b').listen('b:0', { onConnection: () => undefined });
    expect(listener.address).toMatch(/^b:\d+$/);
    expect(await drive(clock, codeOf(a.connect(listener.address, { timeoutMs: 150 })))).toBe('TIMEOUT');
    expect(await codeOf(network.transport('b').listen(listener.address, { onConnection: () => undefined }))).toBe('ALREADY_EXISTS');
    await listener.close();
    await listener.close();
    expect(await drive(clock, codeOf(a.connect(listener.address)))).toBe('CONNECTION_REFUSED');
    for (const bad of ['b', 'b:', ':1', 'b:70000', 'b c:1']) expect(await codeOf(a.connect(bad))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(a.listen('b:1', { onConnection: () => undefined }))).toBe('INVALID_ARGUMENT');
    expect(() => new SimulatedNetwork({ clock, seed: 1, defaults: { lossProbability: 2 } })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));

    // Clean close: the peer reads everything, then its read ends and its writes fail.
    const server = await accepting(network.transport('b'), 'b:2');
    const connection = await drive(clock, a.connect('b:2'));
    const peer = await server.next();
    const received = readAll(peer);
    await connection.write(Uint8Array.of(9, 8, 7));
    await connection.close();
    expect(await codeOf(connection.write(Uint8Array.of(1)))).toBe('CLOSED');
    expect([...(await drive(clock, received))]).toEqual([9, 8, 7]);
    expect(await codeOf(peer.write(Uint8Array.of(1)))).toBe('CLOSED');
    await peer.close();
    await drive(clock, clock.sleep(1_000));
    expect(network.openConnectionCount).toBe(0);
  });

  it('destroy() breaks the local side at once and the peer one latency later', async () => {
    const clock = new VirtualClock();
    const network = new SimulatedNetwork({ clock, seed: 10, defaults: { latencyMs: 30 } });
    const server = await accepting(network.transport('b'), 'b:1');
    const connection = await drive(clock, network.transport('a').connect('b:1'), 1_000, 1);
    const peer = await server.next();
    let peerFailedAtMs = -1;
    const peerRead = codeOf(readAll(peer).finally(() => (peerFailedAtMs = clock.now())));
    const startMs = clock.now();
    connection.destroy();
    expect(await codeOf(connection.write(Uint8Array.of(1)))).toBe('CONNECTION_LOST');
    expect(await drive(clock, peerRead, 1_000, 1)).toBe('CONNECTION_LOST');
    expect(peerFailedAtMs - startMs).toBe(30);
    expect(network.linkStats('a', 'b').connectionsBroken).toBe(1);
  });

  it('an aborted write that never started leaves the connection usable; one half sent destroys it', async () => {
    const clock = new VirtualClock();
    const network = new SimulatedNetwork({ clock, seed: 12, sendBufferBytes: 64 * 1024 });
    const server = await accepting(network.transport('b'), 'b:1');
    const connection = await drive(clock, network.transport('a').connect('b:1'));
    const peer = await server.next();
    await connection.write(new Uint8Array(64 * 1024)); // fills the window; the peer does not read yet
    const queued = new AbortController();
    const waiting = codeOf(connection.write(Uint8Array.of(1, 2, 3), { signal: queued.signal }));
    queued.abort();
    expect(await waiting).toBe('ABORTED');
    const received = readAll(peer);
    const tail = connection.write(Uint8Array.of(4)).then(() => connection.close());
    const [got] = await drive(clock, Promise.all([received, tail]));
    expect(got.byteLength).toBe(64 * 1024 + 1);
    expect(got[64 * 1024]).toBe(4);

    const second = await drive(clock, network.transport('a').connect('b:1'));
    const secondPeer = await server.next();
    const secondRead = codeOf(readAll(secondPeer));
    const halfSent = new AbortController();
    // 3 segments; the window admits only the first until the peer reads it
    const writing = codeOf(second.write(new Uint8Array(3 * 64 * 1024), { signal: halfSent.signal }));
    halfSent.abort();
    expect(await writing).toBe('ABORTED');
    expect(await codeOf(second.write(Uint8Array.of(1)))).toBe('CONNECTION_LOST');
    expect(await drive(clock, secondRead)).toBe('CONNECTION_LOST');
  });

  it('replays exactly from its seed', async () => {
    const run = async (seed: number): Promise<string[]> => {
      const clock = new VirtualClock();
      const network = new SimulatedNetwork({
        clock,
        seed,
        defaults: { latencyMs: 7, jitterMs: 25, bandwidthBytesPerSec: 2_000_000, lossProbability: 0.1, reorderProbability: 0.2, resetProbability: 0.01 },
      });
      const trace: string[] = [];
      const server = await accepting(network.transport('b'), 'b:1');
      const jobs = [0, 1, 2].map(async (i) => {
        try {
          const connection = await network.transport('a').connect('b:1');
          const peer = await server.next();
          const reading = (async () => {
            for await (const chunk of peer.read()) trace.push(`${clock.now()} recv ${chunk.byteLength}`);
          })();
          for (let k = 0; k < 10; k++) await connection.write(seededBytes(i * 10 + k, 30_000));
          await connection.close();
          await reading;
          trace.push(`${clock.now()} conn ${i} done`);
        } catch (err) {
          trace.push(`${clock.now()} conn ${i} ${isDrkitError(err) ? err.code : String(err)}`);
        }
      });
      await drive(clock, Promise.all(jobs), 600_000, 10);
      trace.push(JSON.stringify(network.totalStats()));
      return trace;
    };
    const first = await run(1234);
    expect(await run(1234)).toEqual(first);
    expect(await run(4321)).not.toEqual(first);
  });

  it('autoAdvance drives the clock for code that never advances it', async () => {
    const clock = new VirtualClock();
    const network = new SimulatedNetwork({ clock, seed: 11, defaults: { latencyMs: 40, bandwidthBytesPerSec: 1_000_000 } });
    const auto = network.autoAdvance();
    try {
      await network.transport('b').listen('b:1', {
        onConnection: (connection) => {
          void (async () => {
            for await (const chunk of connection.read()) await connection.write(chunk); // echo
            await connection.close();
          })();
        },
      });
      const connection = await network.transport('a').connect('b:1');
      const payload = seededBytes(3, 200_000);
      const echoed = readAll(connection);
      await connection.write(payload);
      // a timer that is not the network's also fires while idle
      await clock.sleep(5_000);
      await connection.close();
      expect(equalBytes(await echoed, payload)).toBe(true);
      expect(clock.now()).toBeGreaterThanOrEqual(5_000);
      expect(() => network.autoAdvance()).toThrow(expect.objectContaining({ code: 'BUSY' }));
    } finally {
      await auto.stop();
    }
    const nowMs = clock.now();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(clock.now()).toBe(nowMs);
  });
});
