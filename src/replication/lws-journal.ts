/**
 * The target half of NearSync: a durable journal of light-weight snapshots (LWS) per
 * (source site, session) in the target's MetaStore, the chain's bases (seed snapshots,
 * found by origin once they have replicated, and composed full snapshots), composition
 * of full snapshots from a base plus the LWS records, and clones at any valid LWS point.
 *
 * Durability promise: {@link LwsJournal.append} returns only after the records and the
 * session's new `durableSeq` are in one synced MetaStore batch, so an acknowledged LWS
 * survives a crash of the target; a crash before it leaves the session at its previous
 * `durableSeq` and the source resends from there (records at or below it are skipped).
 * Every write record's checksum (xxh64 of its raw bytes) is checked on receipt and again
 * on replay (CORRUPTION).
 *
 * Whole-block records (deduplicated by fingerprint, lws-block-record.ts) are made whole at
 * receipt — the block copied into the journal: each data block is checked against its
 * fingerprint (CORRUPTION), each reference is read from this tree's ExtentStore (or from a
 * data block earlier in the same batch), each hole is zeros — and journalled as an
 * ordinary write record. A reference to an extent not held here refuses the batch
 * (EXTENT_NOT_FOUND: never acknowledged; the source asks again and sends the data), and
 * once journalled a record needs no extent of the tree: a snapshot deleted and reclaimed
 * later takes nothing a kept LWS needs (copying rather than pinning extents keeps the
 * tree's reference counts the tree's own). An LWS point is valid only when its chain's base is held here:
 * a seed base becomes valid when the seed snapshot has replicated, so a point is never
 * listed valid that cannot be materialized.
 *
 * Correctness of the chain: the source takes the seed's marker M and holds the log from it
 * BEFORE it snapshots the seed S, so S contains every write up to M and perhaps some
 * after; the records after M are absolute overwrites, so replaying all of them in order
 * onto S yields the volume at any later marker (a prefix already in S is written again
 * with the same bytes, and the last write of each byte wins either way).
 */
import { DrkitError } from '../core/errors.js';
import type { Xxh64 } from '../core/checksum.js';
import type { MetaOp, MetaStore } from '../adapters/meta-store.js';
import type { ExtentCodec } from '../dedup/codec.js';
import type { CodecId } from '../dedup/index.js';
import type { SnapshotInfo, SnapshotTree, Volume } from '../snapshot/index.js';
import { equalBytes, toHex } from '../core/bytes.js';
import { originOf } from './origin.js';
import type { LwsBlocksRecord, LwsRecord, LwsWriteRecord } from './internal/lws-messages.js';
import { blockFingerprintMismatch } from './internal/lws-block-record.js';

/** One base of an LWS chain: the full snapshot the records after `markerSeq` apply to. */
export type LwsBase =
  | { readonly kind: 'seed'; readonly markerSeq: number; readonly members: readonly { readonly volumeId: string; readonly seedSnapshotId: string }[] }
  | { readonly kind: 'composed'; readonly markerSeq: number; readonly members: readonly { readonly volumeId: string; readonly snapshotId: string }[] };

/** The durable state of one session at the target. */
export interface LwsSessionState {
  readonly sourceSiteId: string;
  readonly sessionId: string;
  /** Every record up to this sequence number is durable here (0 = none), in the journal's numbering. */
  readonly durableSeq: number;
  readonly bases: readonly LwsBase[];
  /** The source write log whose records the session receives now (absent in states written before it was recorded). */
  readonly sourceLogId?: string;
  /**
   * Journal sequence number = source sequence number + this (0 for the first log). A source
   * whose log was replaced restarts its numbering; the new generation is shifted past every
   * number the journal holds, so old points stay distinct and restorable.
   */
  readonly seqOffset?: number;
}

/** A light-weight snapshot held at the target. */
export interface LwsPoint {
  readonly sourceSiteId: string;
  readonly sessionId: string;
  readonly seq: number;
  /** When the source took it (its clock, ms since the epoch). */
  readonly timeMs: number;
  /** Source volume ids of the consistency group. */
  readonly volumeIds: readonly string[];
  /** Its base is held here: it can be restored. */
  readonly valid: boolean;
}

/** A clone materialized at an LWS point: per source volume id, the volume. */
export interface LwsClone {
  readonly point: LwsPoint;
  readonly volumes: ReadonlyMap<string, Volume>;
  /** Write records replayed (each verified against its checksum). */
  readonly replayedRecords: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const SESSION_PREFIX = 'lws/s/';
/** User metadata key marking a snapshot the journal composed (value `composed`). */
const COMPOSED_META = 'drkit.lws.kind';
const hex = (seq: number) => seq.toString(16).padStart(14, '0');
const key = (s: string) => enc.encode(s);

/**
 * Write bytes one group commit stores at most: bounds one MetaStore transaction while still
 * covering the sender's whole in-flight window (8 batches of up to 4 MiB) in one sync.
 */
const MAX_GROUP_BYTES = 32 << 20;

interface PendingAppend {
  readonly sourceSiteId: string;
  readonly sessionId: string;
  readonly records: readonly LwsRecord[];
  resolve(durableSeq: number): void;
  reject(err: unknown): void;
}

/** The journal of every NearSync session received at one site. */
export class LwsJournal {
  readonly #meta: MetaStore;
  readonly #tree: SnapshotTree;
  readonly #siteId: string;
  readonly #xxh: Xxh64;
  readonly #codec: ExtentCodec;
  readonly #sessions = new Map<string, LwsSessionState>();
  #tail: Promise<unknown> = Promise.resolve();
  /** Appends waiting for the next group commit, in arrival order. */
  readonly #appends: PendingAppend[] = [];
  /**
   * Sessions with a refused append, and why: their later appends are refused too until the
   * source opens the session again (resumes from durableSeq), so nothing is stored past a gap
   * even when later batches were queued behind the refused one (the connection fails meanwhile).
   */
  readonly #refused = new Map<string, unknown>();

  private constructor(meta: MetaStore, tree: SnapshotTree, siteId: string, xxh: Xxh64, codec: ExtentCodec) {
    this.#meta = meta;
    this.#tree = tree;
    this.#siteId = siteId;
    this.#xxh = xxh;
    this.#codec = codec;
  }

  /** Loads the sessions' states. */
  static async open(meta: MetaStore, tree: SnapshotTree, siteId: string, xxh: Xxh64, codec: ExtentCodec): Promise<LwsJournal> {
    const j = new LwsJournal(meta, tree, siteId, xxh, codec);
    for await (const [, v] of meta.iterate({ prefix: key(SESSION_PREFIX) })) {
      const s = JSON.parse(dec.decode(v)) as LwsSessionState;
      j.#sessions.set(sessionKey(s.sourceSiteId, s.sessionId), s);
    }
    return j;
  }

  /** Sessions held here. */
  sessions(): LwsSessionState[] {
    return [...this.#sessions.values()];
  }

  /**
   * Opens (or resumes) a session from `sourceSiteId` whose chain continues from a new
   * seed at `baseMarkerSeq` of the source's write log `sourceLogId`; returns the resume
   * point (`durableSeq`, in the source's numbering). Sequence numbers are comparable only
   * within one log: a different log (the source was rebuilt and reuses the session id)
   * starts a new generation, numbered after everything held, instead of being taken for a
   * resume, which would skip its records or mix them with the old chain's.
   * @throws INVALID_ARGUMENT for a base older than the session's newest in the same log
   */
  async open(sourceSiteId: string, sessionId: string, baseMarkerSeq: number, members: readonly { volumeId: string; seedSnapshotId: string }[], sourceLogId: string): Promise<number> {
    return this.#serial(async () => {
      const k = sessionKey(sourceSiteId, sessionId);
      this.#refused.delete(k);
      const old = this.#sessions.get(k);
      const sameLog = old !== undefined && (old.sourceLogId === undefined || old.sourceLogId === sourceLogId);
      const offset = old === undefined ? 0 : sameLog ? (old.seqOffset ?? 0) : old.durableSeq;
      const baseSeq = baseMarkerSeq + offset;
      const newest = old?.bases.filter((b) => b.kind === 'seed').at(-1);
      if (sameLog && newest !== undefined && baseSeq < newest.markerSeq) {
        throw new DrkitError('INVALID_ARGUMENT', `LWS session ${sessionId}: seed marker ${baseMarkerSeq} is older than ${newest.markerSeq - offset}`);
      }
      if (sameLog && newest !== undefined && newest.markerSeq === baseSeq) {
        if (old!.sourceLogId === undefined) await this.#put({ ...old!, sourceLogId, seqOffset: offset }, []);
        return old!.durableSeq - offset; // a resume
      }
      const base: LwsBase = { kind: 'seed', markerSeq: baseSeq, members: members.map((m) => ({ volumeId: m.volumeId, seedSnapshotId: m.seedSnapshotId })) };
      const state: LwsSessionState = { sourceSiteId, sessionId, durableSeq: Math.max(old?.durableSeq ?? 0, baseSeq), bases: [...(old?.bases ?? []), base], sourceLogId, seqOffset: offset };
      await this.#put(state, []);
      return state.durableSeq - offset;
    });
  }

  /**
   * Which of `fingerprints` this site's tree holds (the answer to LWS_HAVE_REQ). Advisory:
   * an extent may be reclaimed before the batch naming it arrives, which then is refused.
   * @throws NOT_FOUND for an unknown session
   */
  async have(sourceSiteId: string, sessionId: string, fingerprints: readonly Uint8Array[]): Promise<boolean[]> {
    if (!this.#sessions.has(sessionKey(sourceSiteId, sessionId))) throw new DrkitError('NOT_FOUND', `no LWS session ${sessionId} from ${sourceSiteId}`);
    if (fingerprints.some((f) => f.length !== this.#tree.fingerprinter.digestBytes)) return fingerprints.map(() => false);
    return this.#tree.haveExtents(fingerprints);
  }

  /**
   * Verifies and stores records durably; records at or below the session's `durableSeq`
   * are skipped (a resend after a reconnect). Appends made while a sync runs are stored by
   * the next one, in one batch (group commit); an append refused refuses the same session's
   * later appends until it is opened again, so a session never stores past a gap.
   * Whole-block records are made whole first (see the file header).
   * Records carry the source's sequence numbers; they are stored shifted by the session's
   * generation offset (see {@link LwsJournal.open}).
   * @returns the new durableSeq (the source's numbering)
   * @throws NOT_FOUND for an unknown session, CORRUPTION for a record failing its checksum
   *   or a block its fingerprint, EXTENT_NOT_FOUND for a reference to a block not held here
   */
  async append(sourceSiteId: string, sessionId: string, records: readonly LwsRecord[]): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.#appends.push({ sourceSiteId, sessionId, records, resolve, reject });
      // Group commit: appends that arrive while a sync runs are stored by the next one, together.
      void this.#serial(() => this.#commitAppends()).catch(() => undefined);
    });
  }

  /** Stores every queued append (up to {@link MAX_GROUP_BYTES}) in one synced batch. Under #serial. */
  async #commitAppends(): Promise<void> {
    let bytes = 0;
    let n = 0;
    while (n < this.#appends.length && (n === 0 || bytes < MAX_GROUP_BYTES)) {
      for (const r of this.#appends[n]!.records) bytes += r.kind === 'write' ? r.data.length : r.kind === 'blocks' ? r.blocks.length * r.blockBytes : 0;
      n++;
    }
    const group = this.#appends.splice(0, n);
    if (group.length === 0) return; // an earlier commit took this call's append
    if (this.#appends.length > 0) void this.#serial(() => this.#commitAppends()).catch(() => undefined);
    const ops: MetaOp[] = [];
    const states = new Map<string, LwsSessionState>();
    const refused = this.#refused;
    const results: ({ ok: true; durableSeq: number } | { ok: false; err: unknown })[] = [];
    for (const a of group) {
      const k = sessionKey(a.sourceSiteId, a.sessionId);
      try {
        if (refused.has(k)) throw refused.get(k);
        const state = states.get(k) ?? this.#sessions.get(k);
        if (state === undefined) throw new DrkitError('NOT_FOUND', `no LWS session ${a.sessionId} from ${a.sourceSiteId}`);
        const own: MetaOp[] = [];
        const offset = state.seqOffset ?? 0;
        let last = state.durableSeq;
        /** Blocks sent with data in this batch, by fingerprint: later references of the batch name them. */
        const sent = new Map<string, Uint8Array>();
        for (const received of a.records) {
          const r = offset === 0 ? received : { ...received, seq: received.seq + offset };
          if (r.seq <= last) continue;
          if (r.kind === 'write') {
            this.#verified(r);
            own.push({ kind: 'put', key: key(`lws/r/${k}/${hex(r.seq)}`), value: encodeWrite(r) });
          } else if (r.kind === 'blocks') {
            own.push({ kind: 'put', key: key(`lws/r/${k}/${hex(r.seq)}`), value: encodeWrite(await this.#materialized(r, sent)) });
          } else {
            own.push({ kind: 'put', key: key(`lws/m/${k}/${hex(r.seq)}`), value: enc.encode(JSON.stringify({ seq: r.seq, timeMs: r.timeMs, volumeIds: r.volumeIds })) });
          }
          last = r.seq;
        }
        if (own.length > 0) {
          ops.push(...own);
          states.set(k, { ...state, durableSeq: last });
        }
        results.push({ ok: true, durableSeq: last - offset });
      } catch (err) {
        refused.set(k, err);
        results.push({ ok: false, err });
      }
    }
    if (ops.length > 0) {
      for (const [k, state] of states) ops.push({ kind: 'put', key: key(`${SESSION_PREFIX}${k}`), value: enc.encode(JSON.stringify(state)) });
      try {
        await this.#meta.batch(ops, { sync: true });
      } catch (err) {
        for (const a of group) {
          refused.set(sessionKey(a.sourceSiteId, a.sessionId), err);
          a.reject(err);
        }
        return;
      }
      for (const [k, state] of states) this.#sessions.set(k, state);
    }
    group.forEach((a, i) => {
      const r = results[i]!;
      if (r.ok) a.resolve(r.durableSeq);
      else a.reject(r.err);
    });
  }

  /** LWS points held here, oldest first; `valid` when their base is held. */
  async points(filter: { sourceSiteId?: string; sessionId?: string } = {}): Promise<LwsPoint[]> {
    const out: LwsPoint[] = [];
    for (const s of this.#sessions.values()) {
      if (filter.sourceSiteId !== undefined && s.sourceSiteId !== filter.sourceSiteId) continue;
      if (filter.sessionId !== undefined && s.sessionId !== filter.sessionId) continue;
      const k = sessionKey(s.sourceSiteId, s.sessionId);
      for await (const [, v] of this.#meta.iterate({ prefix: key(`lws/m/${k}/`) })) {
        const m = JSON.parse(dec.decode(v)) as { seq: number; timeMs: number; volumeIds: string[] };
        const base = baseFor(s, m.seq);
        out.push({ sourceSiteId: s.sourceSiteId, sessionId: s.sessionId, seq: m.seq, timeMs: m.timeMs, volumeIds: m.volumeIds, valid: base !== undefined && this.#baseSnapshots(base) !== undefined });
      }
    }
    return out;
  }

  /**
   * Materializes the consistency group at LWS `seq`: a clone of the latest full snapshot
   * at or before it (seed or composed) per volume, plus the records up to the marker,
   * each verified. Volumes are named `${namePrefix}${sourceVolumeId}`.
   * @throws NOT_FOUND for an unknown point, INVALID_ARGUMENT for a point that is not valid, CORRUPTION
   */
  async clone(sourceSiteId: string, sessionId: string, seq: number, namePrefix: string): Promise<LwsClone> {
    const s = this.#sessions.get(sessionKey(sourceSiteId, sessionId));
    const point = s === undefined ? undefined : (await this.points({ sourceSiteId, sessionId })).find((p) => p.seq === seq);
    if (s === undefined || point === undefined) throw new DrkitError('NOT_FOUND', `no LWS ${seq} in session ${sessionId} from ${sourceSiteId}`);
    const base = baseFor(s, seq);
    const snaps = base === undefined ? undefined : this.#baseSnapshots(base);
    if (base === undefined || snaps === undefined) throw new DrkitError('INVALID_ARGUMENT', `LWS ${seq} is not valid: its base snapshot is not held here`, { data: { seq } });
    const volumes = new Map<string, Volume>();
    try {
      for (const volumeId of point.volumeIds) {
        const snap = snaps.get(volumeId);
        if (snap === undefined) throw new DrkitError('INVALID_ARGUMENT', `LWS ${seq} names volume ${volumeId}, which its base lacks`);
        volumes.set(volumeId, await this.#tree.clone(snap.id, { name: `${namePrefix}${volumeId}` }));
      }
      let replayed = 0;
      const k = sessionKey(sourceSiteId, sessionId);
      const images = new BlockImages(volumes);
      for await (const [, v] of this.#meta.iterate({ gt: key(`lws/r/${k}/${hex(base.markerSeq)}`), lte: key(`lws/r/${k}/${hex(seq)}`) })) {
        const r = decodeWrite(v);
        if (!volumes.has(r.volumeId)) continue;
        await images.apply(r.volumeId, r.byteOffset, this.#verified(r));
        replayed++;
      }
      await images.flush();
      for (const v of volumes.values()) await v.flush();
      return { point, volumes, replayedRecords: replayed };
    } catch (err) {
      for (const v of volumes.values()) await v.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Composes a full snapshot of the group at LWS `seq` at the target (the source sends
   * none): a clone of the previous full snapshot plus the records up to the marker,
   * snapshotted as one group named `name`, which becomes the chain's newest base.
   * @returns the composed snapshots, per source volume id
   * @throws as {@link LwsJournal.clone}
   */
  async compose(sourceSiteId: string, sessionId: string, seq: number, name: string): Promise<Map<string, SnapshotInfo>> {
    const c = await this.clone(sourceSiteId, sessionId, seq, `.drkit-staging/lws-${sessionId}-${seq}/`);
    const ids = [...c.volumes.keys()];
    let snaps: SnapshotInfo[];
    try {
      const volumeIds = ids.map((v) => c.volumes.get(v)!.id);
      const meta = { 'drkit.lws.session': sessionId, 'drkit.lws.source': sourceSiteId, 'drkit.lws.seq': String(seq), [COMPOSED_META]: 'composed' };
      snaps = volumeIds.length === 1 ? [await this.#tree.snapshot(volumeIds[0]!, { name, userMetadata: meta })] : await this.#tree.snapshotGroup(volumeIds, { name, userMetadata: meta });
    } finally {
      for (const v of c.volumes.values()) await v.close();
    }
    for (const v of c.volumes.values()) await this.#tree.deleteVolume(v.id);
    const byVolume = new Map(ids.map((v, i) => [v, snaps[i]!]));
    await this.#serial(async () => {
      const s = this.#sessions.get(sessionKey(sourceSiteId, sessionId))!;
      const base: LwsBase = { kind: 'composed', markerSeq: seq, members: ids.map((v) => ({ volumeId: v, snapshotId: byVolume.get(v)!.id })) };
      const bases = [...s.bases.filter((b) => b.markerSeq < seq), base, ...s.bases.filter((b) => b.markerSeq > seq)];
      await this.#put({ ...s, bases }, []);
    });
    return byVolume;
  }

  /** The composed full snapshots of a session held here (any still its base or not), oldest first. */
  composedSnapshots(sourceSiteId: string, sessionId: string): SnapshotInfo[] {
    return this.#tree.listSnapshots().filter((x) => x.userMetadata[COMPOSED_META] === 'composed' && x.userMetadata['drkit.lws.session'] === sessionId && x.userMetadata['drkit.lws.source'] === sourceSiteId);
  }

  /** Ids of the composed snapshots the session's chain still uses as bases (the kept LWS need them). */
  composedBaseIds(sourceSiteId: string, sessionId: string): string[] {
    const s = this.#sessions.get(sessionKey(sourceSiteId, sessionId));
    return (s?.bases ?? []).flatMap((b) => (b.kind === 'composed' ? b.members.map((m) => m.snapshotId) : []));
  }

  /**
   * Deletes composed snapshots of a session (retention of composed snapshots). A base the
   * chain still uses is refused: deleting it would take away LWS points reported valid.
   * @throws INVALID_ARGUMENT for an id that is not a composed snapshot of the session, or is a base in use
   */
  async deleteComposed(sourceSiteId: string, sessionId: string, snapshotIds: readonly string[]): Promise<void> {
    return this.#serial(async () => {
      const composed = new Set(this.composedSnapshots(sourceSiteId, sessionId).map((x) => x.id));
      const bases = new Set(this.composedBaseIds(sourceSiteId, sessionId));
      for (const id of snapshotIds) {
        if (!composed.has(id)) throw new DrkitError('INVALID_ARGUMENT', `snapshot ${id} is not a composed snapshot of LWS session ${sessionId}`, { data: { snapshotId: id } });
        if (bases.has(id)) throw new DrkitError('INVALID_ARGUMENT', `composed snapshot ${id} is a base of LWS session ${sessionId}'s kept points`, { data: { snapshotId: id } });
      }
      for (const id of snapshotIds) await this.#tree.deleteSnapshot(id);
    });
  }

  /**
   * LWS retention: drops the points taken before `keepFromMs` and every record no kept
   * point needs (those at or before the base of the oldest kept point), and bases older than it.
   * @returns points dropped
   */
  async retire(sourceSiteId: string, sessionId: string, keepFromMs: number): Promise<number> {
    const points = await this.points({ sourceSiteId, sessionId });
    const drop = points.filter((p) => p.timeMs < keepFromMs);
    if (drop.length === 0) return 0;
    const k = sessionKey(sourceSiteId, sessionId);
    return this.#serial(async () => {
      const s = this.#sessions.get(k)!;
      const oldestKept = points.find((p) => p.timeMs >= keepFromMs);
      const keepBase = oldestKept === undefined ? s.bases.at(-1) : baseFor(s, oldestKept.seq);
      const cut = keepBase?.markerSeq ?? 0;
      const ops: MetaOp[] = drop.map((p) => ({ kind: 'del' as const, key: key(`lws/m/${k}/${hex(p.seq)}`) }));
      for await (const [rk] of this.#meta.iterate({ prefix: key(`lws/r/${k}/`), lte: key(`lws/r/${k}/${hex(cut)}`) })) ops.push({ kind: 'del', key: rk });
      await this.#put({ ...s, bases: s.bases.filter((b) => b.markerSeq >= cut) }, ops);
      return drop.length;
    });
  }

  /**
   * A whole-block record made whole: data blocks verified against their fingerprints,
   * references read from the tree (or `sent`), holes zero; then journalled as a write.
   * @throws CORRUPTION, EXTENT_NOT_FOUND, INVALID_ARGUMENT for fingerprints of another length than this tree's
   */
  async #materialized(r: LwsBlocksRecord, sent: Map<string, Uint8Array>): Promise<LwsWriteRecord> {
    const fp = this.#tree.fingerprinter;
    if (r.digestBytes !== fp.digestBytes) throw new DrkitError('INVALID_ARGUMENT', `LWS record ${r.seq} has ${r.digestBytes}-byte fingerprints, this tree ${fp.digestBytes}-byte ones (${fp.algorithm})`);
    const bb = r.blockBytes;
    const raw = new Uint8Array(r.blocks.length * bb);
    const wanted: { index: number; fingerprint: Uint8Array }[] = [];
    r.blocks.forEach((b, i) => {
      if (b.kind === 'data') {
        const block = this.#codec.decompress(b.codec as CodecId, b.data, bb);
        if (!equalBytes(fp.fingerprint(block), b.fingerprint)) throw blockFingerprintMismatch(r.seq, i);
        raw.set(block, i * bb);
        sent.set(toHex(b.fingerprint), block);
      } else if (b.kind === 'ref') {
        const block = sent.get(toHex(b.fingerprint));
        if (block !== undefined) raw.set(block, i * bb);
        else wanted.push({ index: i, fingerprint: b.fingerprint });
      }
    });
    if (wanted.length > 0) {
      const blocks = await this.#tree.readExtents(wanted.map((w) => w.fingerprint));
      blocks.forEach((block, j) => {
        if (block.length !== bb) throw new DrkitError('CORRUPTION', `LWS record ${r.seq}: the extent of block ${wanted[j]!.index} has ${block.length} bytes, not ${bb}`, { data: { seq: r.seq } });
        raw.set(block, wanted[j]!.index * bb);
      });
    }
    const encoded = this.#codec.compress(raw);
    return { kind: 'write', seq: r.seq, volumeId: r.volumeId, byteOffset: r.byteOffset, checksum: this.#xxh.hash(raw), codec: encoded.codec, rawLength: raw.length, data: encoded.bytes };
  }

  #verified(r: { codec: number; data: Uint8Array; rawLength: number; checksum: bigint; seq: number }): Uint8Array {
    const raw = this.#codec.decompress(r.codec as CodecId, r.data, r.rawLength);
    if (this.#xxh.hash(raw) !== r.checksum) throw new DrkitError('CORRUPTION', `LWS record ${r.seq} fails its checksum`, { data: { seq: r.seq } });
    return raw;
  }

  /** The base's snapshots here per source volume id, or undefined when one is not held (yet). */
  #baseSnapshots(base: LwsBase): Map<string, SnapshotInfo> | undefined {
    const out = new Map<string, SnapshotInfo>();
    if (base.kind === 'composed') {
      for (const m of base.members) {
        const snap = this.#tree.listSnapshots().find((x) => x.id === m.snapshotId);
        if (snap === undefined) return undefined;
        out.set(m.volumeId, snap);
      }
      return out;
    }
    const byOrigin = new Map(this.#tree.listSnapshots().map((x) => [originOf(x, this.#siteId).snapshotId, x] as const));
    for (const m of base.members) {
      const snap = byOrigin.get(m.seedSnapshotId);
      if (snap === undefined) return undefined;
      out.set(m.volumeId, snap);
    }
    return out;
  }

  async #put(state: LwsSessionState, ops: MetaOp[]): Promise<void> {
    const k = sessionKey(state.sourceSiteId, state.sessionId);
    await this.#meta.batch([...ops, { kind: 'put', key: key(`${SESSION_PREFIX}${k}`), value: enc.encode(JSON.stringify(state)) }], { sync: true });
    this.#sessions.set(k, state);
  }

  #serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(f, f);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}

function sessionKey(sourceSiteId: string, sessionId: string): string {
  return `${sourceSiteId}/${sessionId}`;
}

/** The newest base strictly before marker `seq` (the seed's own marker is not a point). */
function baseFor(s: LwsSessionState, seq: number): LwsBase | undefined {
  let best: LwsBase | undefined;
  for (const b of s.bases) if (b.markerSeq < seq && (best === undefined || b.markerSeq >= best.markerSeq)) best = b;
  return best;
}

function encodeWrite(r: LwsWriteRecord): Uint8Array {
  const v = enc.encode(r.volumeId);
  const out = new Uint8Array(1 + v.length + 8 + 8 + 8 + 1 + 4 + r.data.length);
  const dv = new DataView(out.buffer);
  out[0] = v.length;
  out.set(v, 1);
  let at = 1 + v.length;
  dv.setBigUint64(at, BigInt(r.seq));
  dv.setBigUint64(at + 8, BigInt(r.byteOffset));
  dv.setBigUint64(at + 16, r.checksum);
  out[at + 24] = r.codec;
  dv.setUint32(at + 25, r.rawLength);
  at += 29;
  out.set(r.data, at);
  return out;
}

function decodeWrite(b: Uint8Array): LwsWriteRecord {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = b[0]!;
  const volumeId = dec.decode(b.subarray(1, 1 + n));
  const at = 1 + n;
  return {
    kind: 'write',
    volumeId,
    seq: Number(dv.getBigUint64(at)),
    byteOffset: Number(dv.getBigUint64(at + 8)),
    checksum: dv.getBigUint64(at + 16),
    codec: b[at + 24]!,
    rawLength: dv.getUint32(at + 25),
    data: b.slice(at + 29),
  };
}

/** Replay buffer: 64 MiB of whole blocks (4096 of 16 KiB) before they are written, so a burst of small records costs one write per block. */
const MAX_REPLAY_BUFFER_BYTES = 64 * 1024 * 1024;

/** Blocks written per volume write when flushing the replay buffer: 64 x 16 KiB = 1 MiB runs. */
const MAX_RUN_BLOCKS = 64;

/**
 * Records replayed onto clones through whole-block images: each touched block is read
 * once from the clone, every record applied to it in sequence order, and the blocks
 * written back in runs of adjacent blocks — the same bytes as writing each record in
 * order (the last write of each byte wins), with one write per block instead of one
 * read-modify-write per record.
 */
class BlockImages {
  readonly #volumes: ReadonlyMap<string, Volume>;
  readonly #images = new Map<string, Map<number, Uint8Array>>();
  #bytes = 0;

  constructor(volumes: ReadonlyMap<string, Volume>) {
    this.#volumes = volumes;
  }

  async apply(volumeId: string, byteOffset: number, data: Uint8Array): Promise<void> {
    const vol = this.#volumes.get(volumeId)!;
    const bb = vol.blockBytes;
    if (byteOffset + data.length > vol.byteLength) throw new DrkitError('CORRUPTION', `LWS record past the end of volume ${volumeId}`, { data: { byteOffset, byteLength: data.length } });
    let images = this.#images.get(volumeId);
    if (images === undefined) this.#images.set(volumeId, (images = new Map()));
    for (let at = byteOffset; at < byteOffset + data.length; ) {
      const block = Math.floor(at / bb);
      const start = block * bb;
      const blockLen = Math.min(bb, vol.byteLength - start); // a volume's last block may be short
      const end = Math.min(start + blockLen, byteOffset + data.length);
      let img = images.get(block);
      if (img === undefined) {
        const whole = at === start && end === start + blockLen;
        img = whole ? new Uint8Array(blockLen) : await vol.read(start, blockLen);
        images.set(block, img);
        this.#bytes += blockLen;
      }
      img.set(data.subarray(at - byteOffset, end - byteOffset), at - start);
      at = end;
    }
    if (this.#bytes >= MAX_REPLAY_BUFFER_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    for (const [volumeId, images] of this.#images) {
      const vol = this.#volumes.get(volumeId)!;
      const bb = vol.blockBytes;
      const blocks = [...images.keys()].sort((a, b) => a - b);
      for (let i = 0; i < blocks.length; ) {
        let j = i + 1;
        while (j < blocks.length && j - i < MAX_RUN_BLOCKS && blocks[j] === blocks[j - 1]! + 1) j++;
        const parts = blocks.slice(i, j).map((b) => images.get(b)!);
        const run = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        parts.forEach((p, k) => run.set(p, k * bb));
        await vol.write(blocks[i]! * bb, run);
        i = j;
      }
    }
    this.#images.clear();
    this.#bytes = 0;
  }
}
