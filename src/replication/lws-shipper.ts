/**
 * The source half of a NearSync session towards one remote site: takes light-weight
 * snapshots (markers of the write log across a consistency group's volumes), and ships
 * the log records between markers in pipelined batches that the target acknowledges once
 * durable: a record covering whole blocks of its volume as per-block fingerprints (all-zero
 * blocks as holes), data (lz4 when it pays) only for the blocks the target said it lacks
 * (LWS_HAVE_REQ, asked as the batch is cut, answered while earlier batches are in flight)
 * and once per batch; any other record as its exact byte range, compressed, with its xxh64.
 *
 * Retention promise: the session holds the write log from the last marker the target
 * acknowledged (`holdWriteLog`), so no record the target lacks is ever reused; the hold
 * moves only after every batch up to a marker is acknowledged. When the tree drops the
 * hold (the retained log would pass its bound, see `onWriteLogHoldDropped`), `ship()`
 * reports `dropped` and the session must re-seed: the log never grows past the bound.
 * Only flushed records ship: `mark()` makes the marker durable first.
 * Resume promise: a (re)connect opens the session at the target, which tells its last
 * durable sequence number; records at or below it are not sent again. The open names this
 * tree's write log (`writeLogId`): sequence numbers mean something only within one log, so a
 * source rebuilt with a fresh log under the same site and session ids starts a new
 * generation at the target instead of being taken for a resume (see lws-journal.ts).
 */
import { Buffer } from 'node:buffer';
import { DrkitError, isDrkitError } from '../core/errors.js';
import type { Xxh64 } from '../core/checksum.js';
import type { Clock } from '../adapters/clock.js';
import type { ExtentCodec } from '../dedup/codec.js';
import type { LogPosition, SnapshotTree } from '../snapshot/index.js';
import { lwsRecordByteLength, type LwsRecord } from './internal/lws-messages.js';
import type { Peer } from './internal/peer.js';
import { cutWholeBlocks, finishBatch, haveQueryBytes, uniqueFingerprints, type PendingRecord } from './internal/lws-block-dedup.js';

/** Batches in flight per session: 8 x <= 4 MiB keeps a 1 Gbit/s link with ~30 ms RTT busy without unbounded buffering. */
export const MAX_LWS_BATCHES_IN_FLIGHT = 8;

/** Encoded bytes per batch: 4 MiB, half the frame bound, so a batch never needs splitting at the frame. */
export const LWS_BATCH_TARGET_BYTES = 4 * 1024 * 1024;

/** Records per batch: the protocol's bound. */
const LWS_BATCH_RECORDS = 4096;

/** Outcome of one {@link LwsShipper.ship}. */
export type LwsShipResult =
  | { readonly kind: 'shipped'; readonly durableSeq: number; readonly records: number; readonly wireBytes: number }
  /** The tree dropped the session's hold (log bound): re-seed. */
  | { readonly kind: 'dropped' }
  /** The session was stopped or re-seeded while this call ran: nothing to report. */
  | { readonly kind: 'superseded' };

/** The parts of a site a shipper uses. */
export interface LwsShipperContext {
  readonly tree: SnapshotTree;
  readonly codec: ExtentCodec;
  readonly xxh: Xxh64;
  readonly clock: Clock;
  readonly connect: () => Promise<Peer>;
}

/** Options of {@link Site.nearSync}. */
export interface LwsSessionOptions {
  /** Session id (unique per source site and target). */
  readonly sessionId: string;
  /** The consistency group's volumes (source ids). */
  readonly volumeIds: readonly string[];
}

/** One NearSync session's shipping (see the file header). */
export class LwsShipper {
  readonly sessionId: string;
  readonly volumeIds: readonly string[];
  /** The write-log holder id of this session. */
  readonly holderId: string;
  readonly #ctx: LwsShipperContext;
  #peer: Peer | undefined;
  #base: { markerSeq: number; members: { volumeId: string; seedSnapshotId: string }[] } | undefined;
  readonly #markerTimes = new Map<number, number>();
  #epoch = 0;
  /** Wire bytes of record payloads sent (data plus headers) and of fingerprint queries, for the wire ratio. */
  wireBytes = 0;
  /** Blocks of whole-block records shipped as a reference (the target held them) or a hole, not as data. */
  dedupedBlocks = 0;

  constructor(ctx: LwsShipperContext, remoteSiteId: string, options: LwsSessionOptions) {
    if (options.volumeIds.length === 0) throw new DrkitError('INVALID_ARGUMENT', 'a NearSync session needs at least one volume');
    this.#ctx = ctx;
    this.sessionId = options.sessionId;
    this.volumeIds = [...options.volumeIds];
    this.holderId = `nearsync/${remoteSiteId}/${options.sessionId}`;
  }

  /**
   * The seed point of a new chain: a marker across the group, held BEFORE the caller
   * snapshots the seed (mark, hold, snapshot; see lws-journal.ts for why replay is correct).
   */
  async markSeed(): Promise<LogPosition> {
    this.#epoch++;
    const at = await this.#ctx.tree.markWriteLog(this.volumeIds);
    await this.#ctx.tree.holdWriteLog(this.holderId, at);
    return at;
  }

  /** Names the chain's seed: its marker and the seed snapshot of each volume (source ids). */
  setBase(markerSeq: number, seedSnapshotIds: ReadonlyMap<string, string>): void {
    this.#base = { markerSeq, members: this.volumeIds.map((v) => ({ volumeId: v, seedSnapshotId: seedSnapshotIds.get(v)! })) };
  }

  /**
   * Takes an LWS: a marker across the group (no block-map snapshot), made durable with
   * every write before it before anything ships — a target never holds a record a crash
   * of the source could lose (the log would then reuse its sequence number for another).
   */
  async mark(): Promise<LogPosition> {
    const at = await this.#ctx.tree.markWriteLog(this.volumeIds);
    await this.#ctx.tree.flush();
    this.#markerTimes.set(at.seq, this.#ctx.clock.now());
    return at;
  }

  /**
   * Ships every record from the hold up to the marker `upTo`, then moves the hold to it.
   * @throws NOT_FOUND before setBase; transport codes (the next call reconnects and resumes)
   */
  async ship(upTo: LogPosition): Promise<LwsShipResult> {
    const base = this.#base;
    if (base === undefined) throw new DrkitError('NOT_FOUND', `NearSync session ${this.sessionId} has no seed yet`);
    const from = this.#ctx.tree.writeLogHolds().get(this.holderId);
    if (from === undefined) return { kind: 'dropped' };
    const epoch = this.#epoch;
    const peer = await this.#connected();
    let durableSeq: number;
    let records = 0;
    const wireBefore = this.wireBytes;
    const dedupedBefore = this.dedupedBlocks;
    try {
      durableSeq = await peer.lwsOpen(this.sessionId, base.markerSeq, base.members, this.#logId());
      const inFlight = new Set<Promise<number>>();
      let failure: unknown;
      /** Resolves once the previous batch went out: batches leave in order, whenever their fingerprint answers come. */
      let previousSent: Promise<void> = Promise.resolve();
      const send = async (batch: PendingRecord[]) => {
        while (inFlight.size >= MAX_LWS_BATCHES_IN_FLIGHT) await Promise.race(inFlight);
        if (failure !== undefined) throw failure;
        const fingerprints = uniqueFingerprints(batch);
        const have = fingerprints.length === 0 ? Promise.resolve([]) : peer.lwsHave(this.sessionId, fingerprints);
        have.catch(() => undefined);
        this.wireBytes += haveQueryBytes(fingerprints, Buffer.byteLength(this.sessionId));
        const turn = previousSent;
        let sent!: () => void;
        previousSent = new Promise<void>((resolve) => (sent = resolve));
        const p = (async () => {
          let ack: Promise<number>;
          try {
            await turn;
            if (failure !== undefined) throw failure;
            const held = await have;
            if (failure !== undefined) throw failure;
            const done = finishBatch(batch, fingerprints, held, this.#ctx.codec);
            this.wireBytes += done.records.reduce((n, r) => n + lwsRecordByteLength(r), 0);
            this.dedupedBlocks += done.dedupedBlocks;
            ack = peer.lwsBatch(this.sessionId, done.records);
          } catch (err) {
            failure ??= err; // set before the next batch's turn: nothing leaves after a gap
            throw err;
          } finally {
            sent();
          }
          return ack;
        })();
        inFlight.add(p);
        p.then((seq) => {
          durableSeq = Math.max(durableSeq, seq);
        }, (err: unknown) => {
          failure ??= err;
        }).finally(() => inFlight.delete(p));
      };
      const members = new Set(this.volumeIds);
      const blockBytes = new Map(this.volumeIds.map((v) => [v, this.#ctx.tree.getVolume(v).blockBytes] as const));
      let batch: PendingRecord[] = [];
      let batchBytes = 0;
      const skipTo = durableSeq;
      for await (const e of this.#ctx.tree.readWriteLog(from, upTo.seq)) {
        if (e.seq <= skipTo || e.kind === 'flush' || e.seq === base.markerSeq) continue;
        let r: PendingRecord;
        let bytes: number;
        if (e.kind === 'write') {
          if (!members.has(e.volumeId)) continue;
          const whole = cutWholeBlocks(e, blockBytes.get(e.volumeId)!, this.#ctx.tree.fingerprinter);
          if (whole !== undefined) {
            r = whole;
            bytes = whole.maxBytes;
          } else {
            const enc = this.#ctx.codec.compress(e.data);
            r = { kind: 'write', seq: e.seq, volumeId: e.volumeId, byteOffset: e.byteOffset, checksum: this.#ctx.xxh.hash(e.data), codec: enc.codec, rawLength: e.data.length, data: enc.bytes };
            bytes = lwsRecordByteLength(r);
          }
        } else {
          if (!e.volumeIds.every((v) => members.has(v)) || e.volumeIds.length !== members.size) continue; // another session's marker
          r = { kind: 'marker', seq: e.seq, timeMs: this.#markerTimes.get(e.seq) ?? this.#ctx.clock.now(), volumeIds: e.volumeIds };
          bytes = lwsRecordByteLength(r);
        }
        if (batch.length > 0 && (batch.length >= LWS_BATCH_RECORDS || batchBytes + bytes > LWS_BATCH_TARGET_BYTES)) {
          await send(batch);
          batch = [];
          batchBytes = 0;
        }
        batch.push(r);
        batchBytes += bytes;
        records++;
      }
      if (batch.length > 0) await send(batch);
      while (inFlight.size > 0) await Promise.race(inFlight);
      if (failure !== undefined) throw failure;
    } catch (err) {
      this.wireBytes = wireBefore; // resent after the reconnect
      this.dedupedBlocks = dedupedBefore;
      await this.#drop();
      if (isDrkitError(err) && err.code === 'NOT_FOUND' && this.#ctx.tree.writeLogHolds().get(this.holderId) === undefined) return { kind: 'dropped' };
      throw err;
    }
    if (epoch !== this.#epoch) return { kind: 'superseded' };
    if (this.#ctx.tree.writeLogHolds().get(this.holderId) === undefined) return { kind: 'dropped' };
    await this.#ctx.tree.holdWriteLog(this.holderId, upTo);
    for (const seq of this.#markerTimes.keys()) if (seq <= upTo.seq) this.#markerTimes.delete(seq);
    return { kind: 'shipped', durableSeq, records, wireBytes: this.wireBytes - wireBefore };
  }

  /** Stops shipping: releases the hold and the connection. */
  async stop(): Promise<void> {
    this.#epoch++;
    await this.#drop();
    await this.#ctx.tree.releaseWriteLog(this.holderId);
    this.#base = undefined;
  }

  /** Closes the connection (the hold stays: a later ship resumes). */
  async close(): Promise<void> {
    await this.#drop();
  }

  /** @throws NOT_SUPPORTED for a tree without a write log */
  #logId(): string {
    const id = this.#ctx.tree.writeLogId;
    if (id === undefined) throw new DrkitError('NOT_SUPPORTED', 'NearSync needs a tree with a write log');
    return id;
  }

  async #connected(): Promise<Peer> {
    if (this.#peer !== undefined) return this.#peer;
    const p = await this.#ctx.connect();
    this.#peer = p;
    void p.done.then(() => {
      if (this.#peer === p) this.#peer = undefined;
    });
    return p;
  }

  async #drop(): Promise<void> {
    const p = this.#peer;
    this.#peer = undefined;
    await p?.close().catch(() => undefined);
  }
}
