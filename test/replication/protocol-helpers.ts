/**
 * Test helpers for the wire protocol: a tiny in-memory duplex connection (until
 * MemoryTransport lands), fast-check arbitraries of every message, and frame mutators.
 */
import fc from 'fast-check';
import type { Connection, PeerInfo } from '../../src/adapters/transport.js';
import { DrkitError } from '../../src/core/errors.js';
import type { Message } from '../../src/replication/internal/messages.js';

/** One end of an in-memory ordered byte stream. Records everything it writes. */
class DuplexEnd implements Connection {
  readonly peer: PeerInfo;
  readonly written: Uint8Array[] = [];
  other!: DuplexEnd;
  #queue: Uint8Array[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  #error: Error | undefined;
  #closed = false;

  constructor(address: string, extra: Partial<PeerInfo> = {}) {
    this.peer = { address, ...extra };
  }

  get isClosed(): boolean {
    return this.#closed || this.#error !== undefined;
  }

  push(bytes: Uint8Array): void {
    if (this.#ended || this.#error) return;
    this.#queue.push(bytes);
    this.#notify();
  }

  end(): void {
    this.#ended = true;
    this.#notify();
  }

  fail(error: Error): void {
    this.#error ??= error;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.#error) throw this.#error;
    if (this.#closed) throw new DrkitError('CLOSED', 'connection closed');
    const copy = bytes.slice();
    this.written.push(copy);
    this.other.push(copy);
  }

  async *read(): AsyncIterable<Uint8Array> {
    for (;;) {
      const next = this.#queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#error) throw this.#error;
      if (this.#ended) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.other.end();
    this.end();
  }

  destroy(reason?: Error): void {
    if (this.#closed && this.#error === undefined) {
      this.#error = reason ?? new DrkitError('CONNECTION_LOST', 'destroyed');
      return;
    }
    this.#closed = true;
    this.fail(reason ?? new DrkitError('CONNECTION_LOST', 'connection destroyed'));
    this.other.fail(new DrkitError('CONNECTION_LOST', 'peer destroyed the connection'));
  }
}

export type TestConnection = DuplexEnd;

/** A connected pair: [client end, server end]. */
export function memoryDuplex(peerInfo: { client?: Partial<PeerInfo>; server?: Partial<PeerInfo> } = {}): [DuplexEnd, DuplexEnd] {
  // Each end's `peer` describes the other side.
  const client = new DuplexEnd('server:1', peerInfo.server);
  const server = new DuplexEnd('client:1', peerInfo.client);
  client.other = server;
  server.other = client;
  return [client, server];
}

/** A Connection whose read() yields the given chunks, then ends; writes are recorded. */
export function scriptedConnection(chunks: readonly Uint8Array[]): Connection & { written: Uint8Array[] } {
  const written: Uint8Array[] = [];
  return {
    peer: { address: 'scripted:0' },
    written,
    async write(bytes) {
      written.push(bytes.slice());
    },
    async *read() {
      for (const c of chunks) yield c;
    },
    async close() {},
    destroy() {},
  };
}

/** Splits `bytes` into chunks at `cuts` (fractions in [0,1)). */
export function chunkAt(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].filter((p) => p > 0 && p < bytes.length).sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of points) {
    out.push(bytes.subarray(at, p));
    at = p;
  }
  out.push(bytes.subarray(at));
  return out;
}

// ---- arbitraries -------------------------------------------------------------------

const idChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:'.split(''), 'é', '€', '😀');
export const arbId = fc.array(idChar, { minLength: 1, maxLength: 24 }).map((cs) => cs.join(''));
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const safe = fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const generation = fc.integer({ min: 0, max: 2 ** 31 - 1 });
const text = (max: number) => fc.string({ maxLength: max, unit: 'grapheme' });

const arbSnapshot = fc.record(
  {
    name: fc.string({ minLength: 1, maxLength: 40 }),
    createdMs: safe,
    consistency: fc.constantFrom('crash' as const, 'application' as const),
    fallbackReason: text(40),
    userMetadata: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 5 }),
  },
  { requiredKeys: ['name', 'createdMs', 'consistency', 'userMetadata'] },
);

const arbExtent = fc
  .record({ fingerprint: bytes32, checksum: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), lz4: fc.boolean(), raw: fc.uint8Array({ minLength: 1, maxLength: 200 }) })
  .map(({ fingerprint, checksum, lz4, raw }) => ({
    fingerprint,
    checksum,
    codec: lz4 ? 1 : 0,
    rawLength: lz4 ? raw.length + 7 : raw.length,
    data: raw,
  }));

const arbBlocks = fc
  .record({ start: fc.integer({ min: 0, max: 2 ** 40 }), gaps: fc.array(fc.record({ gap: fc.integer({ min: 1, max: 1000 }), fp: fc.option(bytes32, { nil: undefined }) }), { maxLength: 30 }), tail: fc.integer({ min: 1, max: 50 }) })
  .map(({ start, gaps, tail }) => {
    let index = start;
    const blocks = gaps.map(({ gap, fp }) => {
      index += gap;
      return { blockIndex: index, fingerprint: fp };
    });
    return { blocks, cursorAfter: index + tail };
  });

/** Every message type of protocol v1, with bounded but varied contents. */
export const arbMessage: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant('HELLO' as const), version: fc.integer({ min: 1, max: 255 }), siteId: arbId, nonce: bytes32 }),
  fc.record({ type: fc.constant('CHALLENGE' as const), version: fc.integer({ min: 1, max: 255 }), siteId: arbId, nonce: bytes32, proof: bytes32 }, { requiredKeys: ['type', 'version', 'siteId', 'nonce'] }),
  fc.record({ type: fc.constant('AUTH' as const), proof: bytes32 }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('WELCOME' as const) }),
  fc.record({ type: fc.constant('ERROR' as const), code: fc.constantFrom('AUTH_FAILED', 'PROTOCOL_ERROR', 'NOT_FOUND', 'SOME_FUTURE_CODE'), message: text(100) }),
  fc.record({ type: fc.constant('LIST_REQ' as const), requestId: u32, volumeKey: arbId, cursor: arbId }, { requiredKeys: ['type', 'requestId', 'volumeKey'] }),
  fc.record(
    {
      type: fc.constant('LIST_RES' as const),
      requestId: u32,
      snapshots: fc.array(fc.record({ originSiteId: arbId, originSnapshotId: arbId, snapshotId: arbId, createdMs: safe }), { maxLength: 10 }),
      nextCursor: arbId,
    },
    { requiredKeys: ['type', 'requestId', 'snapshots'] },
  ),
  fc.record(
    {
      type: fc.constant('BEGIN_REQ' as const),
      requestId: u32,
      sessionId: arbId,
      volumeKey: arbId,
      originSiteId: arbId,
      originSnapshotId: arbId,
      originVolumeId: arbId,
      baseOriginSnapshotId: arbId,
      byteLength: safe,
      blockBytes: fc.integer({ min: 9, max: 20 }).map((log) => 2 ** log),
      snapshot: arbSnapshot,
      groupKey: arbId,
    },
    { requiredKeys: ['type', 'requestId', 'sessionId', 'volumeKey', 'originSiteId', 'originSnapshotId', 'originVolumeId', 'byteLength', 'blockBytes', 'snapshot'] },
  ),
  fc.record({ type: fc.constant('BEGIN_RES' as const), requestId: u32, resumeBlock: safe, baseFound: fc.boolean(), committedSnapshotId: arbId }, { requiredKeys: ['type', 'requestId', 'resumeBlock', 'baseFound'] }),
  fc.record({ type: fc.constant('COMMIT_REQ' as const), requestId: u32, sessionIds: fc.array(arbId, { minLength: 1, maxLength: 8 }) }),
  fc.record({ type: fc.constant('COMMIT_RES' as const), requestId: u32, snapshotIds: fc.array(arbId, { maxLength: 8 }) }),
  fc.record({ type: fc.constant('PULL_REQ' as const), requestId: u32, snapshotId: arbId, baseSnapshotId: arbId }, { requiredKeys: ['type', 'requestId', 'snapshotId'] }),
  fc.record({ type: fc.constant('ABORT' as const), sessionId: arbId, reason: text(100) }),
  fc.record({ type: fc.constant('HAVE_REQ' as const), requestId: u32, fingerprints: fc.array(bytes32, { maxLength: 40 }) }),
  fc.record({ type: fc.constant('HAVE_RES' as const), requestId: u32, have: fc.array(fc.boolean(), { maxLength: 70 }) }),
  fc.record({ type: fc.constant('EXTENTS' as const), batchId: u32, extents: fc.array(arbExtent, { minLength: 1, maxLength: 6 }) }),
  fc.record({ type: fc.constant('EXTENTS_ACK' as const), batchId: u32 }),
  fc.tuple(u32, arbId, arbBlocks).map(([batchId, sessionId, { blocks, cursorAfter }]) => ({ type: 'BLOCKS' as const, batchId, sessionId, cursorAfter, blocks })),
  fc.record({ type: fc.constant('BLOCKS_ACK' as const), batchId: u32, cursor: safe }),
  fc.oneof(
    fc.record({ type: fc.constant('STATUS_REQ' as const), requestId: u32, lineage: arbId }),
    fc.record({ type: fc.constant('STATUS_REQ' as const), requestId: u32, snapshotId: arbId }),
  ),
  fc.record(
    { type: fc.constant('STATUS_RES' as const), requestId: u32, lineage: arbId, generation: generation, writableVolumeId: arbId, snapshotGeneration: generation },
    { requiredKeys: ['type', 'requestId', 'lineage', 'generation'] },
  ),
  fc.record({
    type: fc.constant('PROMOTE_REQ' as const),
    requestId: u32,
    members: fc.array(
      fc.tuple(arbId, arbId, generation, fc.oneof(arbId.map((volumeId) => ({ volumeId })), fc.string({ minLength: 1, maxLength: 40 }).map((volumeName) => ({ volumeName })))).map(([lineage, originSnapshotId, sourceGeneration, target]) => ({ lineage, originSnapshotId, sourceGeneration, ...target })),
      { minLength: 1, maxLength: 4 },
    ),
  }),
  fc.record({ type: fc.constant('PROMOTE_RES' as const), requestId: u32, members: fc.array(fc.record({ lineage: arbId, generation: generation, volumeId: arbId }), { maxLength: 4 }) }),
  fc.record({ type: fc.constant('DEMOTE_REQ' as const), requestId: u32, members: fc.array(fc.record({ lineage: arbId, originSnapshotId: arbId, sourceGeneration: generation }), { minLength: 1, maxLength: 4 }) }),
  fc.record({ type: fc.constant('DEMOTE_RES' as const), requestId: u32, members: fc.array(fc.record({ lineage: arbId, generation: generation }), { maxLength: 4 }) }),
);
