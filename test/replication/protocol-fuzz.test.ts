/**
 * Fuzzes the wire protocol: >= 100,000 random and mutated frames thrown at the frame
 * decoder, the FrameReader and a live server endpoint (handshake + message dispatch).
 * Properties: no crash, no hang, only coded DrkitErrors from the allowed set, bounded
 * memory. Seeded: set DRKIT_FUZZ_SEED to replay; the seed is printed and in every message.
 */
import fc from 'fast-check';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/adapters/virtual-clock.js';
import type { Connection } from '../../src/adapters/transport.js';
import { loadXxh64 } from '../../src/core/checksum.js';
import { DrkitError, isDrkitError } from '../../src/core/errors.js';
import { closeWithError } from '../../src/replication/internal/close-with-error.js';
import { FRAME_HEADER_BYTES, FRAME_TYPE, MAX_FRAME_PAYLOAD_BYTES, decodeFrame, encodeFrame, frameTypeName, type FrameType } from '../../src/replication/internal/frame-codec.js';
import { FrameReader } from '../../src/replication/internal/frame-reader.js';
import { clientHandshake, serverHandshake } from '../../src/replication/internal/handshake.js';
import { decodeMessage, encodeMessage, errorFromPeer, readMessage, writeMessage, type Message } from '../../src/replication/internal/messages.js';
import { SeededPrng } from '../../src/testing/internal/seeded-prng.js';
import { chunkAt, memoryDuplex, arbMessage } from './protocol-helpers.js';

const SEED = Number(process.env.DRKIT_FUZZ_SEED ?? 20261125);
const DECODER_CASES = 100_000; // the floor, all at the (fast) decoder level
const READER_SHARE = 0.25; // of those, through a FrameReader with random chunking
const LIVE_CASES = 3_000; // through a live server endpoint: handshake + dispatch loop
const HEAP_GROWTH_BOUND_BYTES = 64 * 1024 * 1024;
const CASE_WALL_BOUND_MS = 2_000; // a live case slower than this is a hang
const ALLOWED = new Set(['PROTOCOL_ERROR', 'AUTH_FAILED', 'FORMAT_VERSION', 'TIMEOUT']);
const KEY = new Uint8Array(32).fill(42);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const xxh64 = await loadXxh64();
const FRAME_TYPES = Object.values(FRAME_TYPE) as FrameType[];
const pool: Message[] = fc.sample(arbMessage, { seed: SEED, numRuns: 2_000 });

/** The generator of hostile byte streams (one or more frames, or none). */
class Mutator {
  readonly prng: SeededPrng;
  constructor(seed: number) {
    this.prng = new SeededPrng(seed);
  }

  int(max: number): number {
    return this.prng.below(max);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(byteLength: number): Uint8Array {
    const out = new Uint8Array(byteLength);
    for (let i = 0; i < byteLength; i++) out[i] = this.int(256);
    return out;
  }

  frameOf(message: Message, seq: number): Uint8Array {
    return encodeFrame(xxh64, { type: FRAME_TYPE[message.type], seq, parts: encodeMessage(message) });
  }

  /** Re-frames a payload under `type` with a correct checksum: reaches the message decoders. */
  framed(type: FrameType, seq: number, payload: Uint8Array): Uint8Array {
    return encodeFrame(xxh64, { type, seq, parts: [payload] });
  }

  jsonGarbage(): unknown {
    return this.pick<() => unknown>([
      () => null,
      () => -1,
      () => 2 ** 32,
      () => 1.5,
      () => Number.MAX_SAFE_INTEGER + 2,
      () => 'x'.repeat(this.int(300)),
      () => '\u0000',
      () => '\ud800',
      () => [],
      () => Array.from({ length: this.int(600) }, () => 'id'),
      () => ({ nested: { deeper: [1, 2, 3] } }),
      () => true,
      () => '',
      () => 'a'.repeat(64),
    ])();
  }

  /** One hostile stream whose frames start at sequence number `seq`. */
  stream(seq: number): Uint8Array[] {
    const message = this.pick(pool);
    const valid = this.frameOf(message, seq);
    const payloadOf = (m: Message) => Uint8Array.from(encodeMessage(m).flatMap((p) => [...p]));
    switch (this.int(12)) {
      case 0:
        return [this.bytes(this.int(this.prng.chance(0.1) ? 400 : 60))];
      case 1: {
        const out = valid.slice();
        for (let flips = 1 + this.int(4); flips > 0; flips--) out[this.int(out.length)]! ^= 1 << this.int(8);
        return [out];
      }
      case 2:
        return [valid.subarray(0, this.int(valid.length))];
      case 3: {
        const out = valid.slice();
        const payloadByteLength = valid.length - FRAME_HEADER_BYTES - 8;
        const lie = this.pick([0xffff_ffff, 0x8000_0000, MAX_FRAME_PAYLOAD_BYTES + 1, MAX_FRAME_PAYLOAD_BYTES, payloadByteLength + 1, Math.max(0, payloadByteLength - 1), this.int(2 ** 32), this.int(64)]);
        new DataView(out.buffer).setUint32(10, lie);
        return [out];
      }
      case 4: {
        const out = valid.slice();
        new DataView(out.buffer).setUint32(6, this.prng.chance(0.5) ? seq + 1 + this.int(5) : this.int(2 ** 32));
        return [out];
      }
      case 5: {
        const out = valid.slice();
        out[2] = this.prng.chance(0.5) ? 2 : (1 + this.int(255)) & 0xff || 0;
        return [out];
      }
      case 6:
        return [this.framed(this.pick(FRAME_TYPES), seq, this.bytes(this.int(200)))];
      case 7: // type confusion: a valid payload under another frame type
        return [this.framed(this.pick(FRAME_TYPES), seq, payloadOf(message))];
      case 8: {
        const payload = payloadOf(message);
        for (let flips = 1 + this.int(3); flips > 0 && payload.length > 0; flips--) payload[this.int(payload.length)] = this.int(256);
        if (payload.length >= 4 && this.prng.chance(0.3)) new DataView(payload.buffer).setUint32(this.int(payload.length - 3), this.int(2 ** 32)); // a count or length lie
        return [this.framed(FRAME_TYPE[message.type], seq, payload)];
      }
      case 9: {
        // JSON field mutation of a control message (binary ones get a random field lie instead).
        const payload = payloadOf(message);
        let text: string;
        try {
          const object = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
          const keys = Object.keys(object);
          const key = keys.length > 0 && this.prng.chance(0.8) ? this.pick(keys) : 'extra';
          if (this.prng.chance(0.15)) delete object[key];
          else object[key] = this.jsonGarbage();
          text = JSON.stringify(object);
        } catch {
          return [this.framed(FRAME_TYPE[message.type], seq, payload.subarray(0, this.int(payload.length + 1)))];
        }
        return [this.framed(FRAME_TYPE[message.type], seq, new TextEncoder().encode(text))];
      }
      case 10: {
        // Valid frames, then one hostile one (or junk) in the middle of a conversation.
        const count = 1 + this.int(3);
        const frames = Array.from({ length: count }, (_, i) => this.frameOf(this.pick(pool), seq + i));
        return [...frames, ...this.stream(seq + count)];
      }
      default: {
        const header = this.bytes(FRAME_HEADER_BYTES + this.int(40));
        header[0] = 0x44;
        header[1] = 0x4b;
        header[2] = 1;
        new DataView(header.buffer).setUint32(10, this.int(4) === 0 ? this.int(2 ** 32) : this.int(64));
        return [header];
      }
    }
  }
}

interface Tally {
  ok: number;
  codes: Map<string, number>;
}

function record(tally: Tally, err: unknown, context: string): void {
  if (!isDrkitError(err)) throw new Error(`${context}: non-DrkitError ${String((err as Error)?.stack ?? err)}`);
  const fromPeer = err.data.fromPeer === true;
  if (!ALLOWED.has(err.code) && !fromPeer) throw new Error(`${context}: unexpected code ${err.code}: ${err.message}`);
  tally.codes.set(err.code, (tally.codes.get(err.code) ?? 0) + 1);
}

async function throughReader(chunks: Uint8Array[], firstSeq: number): Promise<number> {
  const connection: Connection = {
    peer: { address: 'fuzz' },
    write: async () => undefined,
    read: async function* () {
      yield* chunks;
    },
    close: async () => undefined,
    destroy: () => undefined,
  };
  const reader = new FrameReader(connection, { xxh64, clock: new VirtualClock(), firstSeq });
  let frames = 0;
  for await (const frame of reader) {
    decodeMessage(frame);
    frames++;
  }
  return frames;
}

/** The endpoint under attack: handshake, then a dispatch loop answering every request. */
async function liveServer(connection: Connection, clock: VirtualClock): Promise<'closed'> {
  const { reader, writer } = await serverHandshake(connection, { siteId: 'target', clock, pskFor: (id) => (id === 'fuzzer' ? KEY : undefined), idleTimeoutMs: 30_000 });
  try {
    for (;;) {
      const m = await readMessage(reader);
      if (m === undefined) {
        await connection.close();
        return 'closed';
      }
      switch (m.type) {
        case 'LIST_REQ':
          await writeMessage(writer, { type: 'LIST_RES', requestId: m.requestId, snapshots: [] });
          break;
        case 'BEGIN_REQ':
          await writeMessage(writer, { type: 'BEGIN_RES', requestId: m.requestId, resumeBlock: 0, baseFound: false });
          break;
        case 'HAVE_REQ':
          await writeMessage(writer, { type: 'HAVE_RES', requestId: m.requestId, have: m.fingerprints.map((fp) => fp[0]! % 2 === 0) });
          break;
        case 'EXTENTS':
          await writeMessage(writer, { type: 'EXTENTS_ACK', batchId: m.batchId });
          break;
        case 'BLOCKS':
          await writeMessage(writer, { type: 'BLOCKS_ACK', batchId: m.batchId, cursor: m.cursorAfter });
          break;
        case 'COMMIT_REQ':
          await writeMessage(writer, { type: 'COMMIT_RES', requestId: m.requestId, snapshotIds: m.sessionIds.map((_, i) => `snap-${i}`) });
          break;
        case 'ABORT':
          break;
        case 'ERROR':
          throw errorFromPeer(m);
        default:
          throw new DrkitError('PROTOCOL_ERROR', `unexpected ${m.type} after the handshake`);
      }
    }
  } catch (err) {
    await closeWithError(connection, writer, err, { clock });
    throw err;
  }
}

/** JS heap plus ArrayBuffer memory (frame buffers live outside the JS heap), after a full GC. */
function heapUsed(): number {
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

describe(`protocol fuzz (seed ${SEED}; replay with DRKIT_FUZZ_SEED=${SEED})`, () => {
  console.log(`protocol fuzz seed: ${SEED}`);

  it(`${DECODER_CASES} hostile streams at the decoder and FrameReader: coded errors only, bounded memory`, async () => {
    const mutator = new Mutator(SEED);
    const tally: Tally = { ok: 0, codes: new Map() };
    const heapStart = heapUsed();
    let heapPeakGrowth = 0;
    let slowestMs = 0;
    for (let i = 0; i < DECODER_CASES; i++) {
      const context = `seed ${SEED} decoder case ${i}`;
      const firstSeq = mutator.prng.chance(0.9) ? 0 : mutator.int(2 ** 32);
      const chunks = mutator.stream(firstSeq);
      const started = performance.now();
      try {
        if (chunks.length === 1 && !mutator.prng.chance(READER_SHARE)) {
          decodeMessage(decodeFrame(xxh64, chunks[0]!, firstSeq));
        } else {
          const whole = Uint8Array.from(chunks.flatMap((c) => [...c]));
          const cuts = Array.from({ length: mutator.int(6) }, () => mutator.prng.next());
          await throughReader(chunkAt(whole, cuts), firstSeq);
        }
        tally.ok++;
      } catch (err) {
        record(tally, err, context);
      }
      slowestMs = Math.max(slowestMs, performance.now() - started);
      if (i % 20_000 === 19_999) heapPeakGrowth = Math.max(heapPeakGrowth, heapUsed() - heapStart);
    }
    const heapGrowth = heapUsed() - heapStart;
    console.log(`decoder fuzz: ${JSON.stringify({ seed: SEED, ok: tally.ok, codes: Object.fromEntries(tally.codes), heapPeakGrowthBytes: heapPeakGrowth, slowestMs: Math.round(slowestMs) })}`);
    expect(Math.max(heapGrowth, heapPeakGrowth), `seed ${SEED}`).toBeLessThan(HEAP_GROWTH_BOUND_BYTES);
    expect(slowestMs, `seed ${SEED}`).toBeLessThan(CASE_WALL_BOUND_MS);
    // The fuzz must reach every outcome, or it is not testing much.
    expect(tally.ok, `seed ${SEED}`).toBeGreaterThan(DECODER_CASES / 50);
    for (const code of ['PROTOCOL_ERROR', 'FORMAT_VERSION']) expect(tally.codes.get(code) ?? 0, `seed ${SEED} ${code}`).toBeGreaterThan(100);
  });

  it(`${LIVE_CASES} hostile conversations with a live server: it always ends, closes, and fails only with coded errors`, async () => {
    const mutator = new Mutator(SEED ^ 0x5eed);
    const tally: Tally = { ok: 0, codes: new Map() };
    const heapStart = heapUsed();
    let authenticated = 0;
    let authenticatedPayloads = 0;
    for (let i = 0; i < LIVE_CASES; i++) {
      const context = `seed ${SEED} live case ${i}`;
      const clock = new VirtualClock();
      const [client, server] = memoryDuplex();
      const served = liveServer(server, clock);
      served.catch(() => undefined);
      const postAuth = mutator.prng.chance(0.6);
      const leaveOpen = mutator.prng.chance(0.05); // then only a timeout can end it
      if (postAuth) {
        const { writer } = await clientHandshake(client, { siteId: 'fuzzer', clock, psk: KEY });
        authenticated++;
        for (let k = mutator.int(3); k > 0; k--) await writeMessage(writer, mutator.pick(pool.filter((m) => m.type === 'LIST_REQ' || m.type === 'HAVE_REQ' || m.type === 'EXTENTS')));
        // Half the time the hostile payloads go out tagged by the client's frame key, so they
        // get past frame authentication and reach the message decoders and the receiver.
        const tagged = mutator.prng.chance(0.5);
        for (const chunk of mutator.stream(writer.nextSeq)) {
          const type = chunk.length >= FRAME_HEADER_BYTES ? chunk[3]! : 0;
          const payloadByteLength = chunk.length >= FRAME_HEADER_BYTES ? new DataView(chunk.buffer, chunk.byteOffset).getUint32(10) : 0;
          if (tagged && frameTypeName(type) !== undefined && FRAME_HEADER_BYTES + payloadByteLength <= chunk.length) {
            await writer.write(type as FrameType, [chunk.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + payloadByteLength)]).catch(() => undefined);
            authenticatedPayloads++;
          } else {
            await client.write(chunk);
          }
        }
      } else if (mutator.prng.chance(0.5)) {
        // A plausible opening (known or unknown site), then a hostile or forged AUTH.
        const siteId = mutator.prng.chance(0.8) ? 'fuzzer' : 'stranger';
        await client.write(mutator.frameOf({ type: 'HELLO', version: 2, siteId, nonce: mutator.bytes(32) }, 0));
        const forged = mutator.frameOf({ type: 'AUTH', proof: mutator.bytes(32) }, 1);
        for (const chunk of mutator.prng.chance(0.5) ? [forged] : mutator.stream(1)) await client.write(chunk);
      } else {
        for (const chunk of mutator.stream(0)) await client.write(chunk);
      }
      if (!leaveOpen) await client.close();
      else await clock.advance(30_000);
      let watchdog: NodeJS.Timeout | undefined;
      const hang = new Promise<'hang'>((resolve) => {
        watchdog = setTimeout(() => resolve('hang'), CASE_WALL_BOUND_MS);
      });
      try {
        const result = await Promise.race([served, hang]);
        if (result === 'hang') throw new Error(`${context}: the server hung`);
        tally.ok++;
      } catch (err) {
        if (err instanceof Error && err.message.endsWith('hung')) throw err;
        record(tally, err, context);
        expect(server.isClosed, `${context}: connection left open after ${String(err)}`).toBe(true);
      } finally {
        clearTimeout(watchdog);
      }
    }
    const heapGrowth = heapUsed() - heapStart;
    console.log(`live fuzz: ${JSON.stringify({ seed: SEED, authenticated, authenticatedPayloads, ok: tally.ok, codes: Object.fromEntries(tally.codes), heapGrowthBytes: heapGrowth })}`);
    expect(heapGrowth, `seed ${SEED}`).toBeLessThan(HEAP_GROWTH_BOUND_BYTES);
    expect(tally.codes.get('TIMEOUT') ?? 0, `seed ${SEED}`).toBeGreaterThan(0);
    expect(authenticatedPayloads, `seed ${SEED}: tagged hostile frames reached the decoders`).toBeGreaterThan(LIVE_CASES / 10);
    expect(tally.codes.get('AUTH_FAILED') ?? 0, `seed ${SEED}`).toBeGreaterThan(LIVE_CASES / 20);
    expect(tally.codes.get('PROTOCOL_ERROR') ?? 0, `seed ${SEED}`).toBeGreaterThan(LIVE_CASES / 10);
  });
});
