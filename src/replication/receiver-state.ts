/**
 * The receiving side of replication at one site: staging volumes for snapshots in
 * transit, verification of every extent that arrives, and the atomic commit that makes
 * a replicated snapshot exist.
 *
 * Promises:
 * - A snapshot exists here only when complete: data is mapped into a hidden staging
 *   volume (a clone of the local copy of the base, or an empty volume) and becomes a
 *   snapshot in one tree commit at `commit()`; a group's members commit together.
 * - Nothing unverified is stored: each extent's decompressed bytes must match both its
 *   xxh64 checksum and its fingerprint, else CORRUPTION and nothing of the batch lands.
 * - Resumable: a session's staging volume and cursor are checkpointed (tree flush, then
 *   the session record) at least every `checkpointBytes` of mapped blocks (64 MiB); a new
 *   `begin` of the same session resumes from the checkpoint. Every call is idempotent.
 * - One sender per snapshot at a time: a caller that passes an `owner` (a Peer passes its
 *   connection) holds the sessions it begins until it commits them or `release(owner)`.
 *   A begin of a snapshot (by origin) that another live owner is receiving fails with
 *   BUSY (transient: retry once it is done), and an owner can touch only its own
 *   sessions, so two senders' batches never interleave in one session. Commits run one at
 *   a time, so two sessions of one snapshot can never both commit it.
 */
import { DrkitError } from '../core/errors.js';
import { MAX_ID_BYTES, utf8ByteLength } from './internal/json-shape.js';
import { utf8 } from '../core/bytes.js';
import type { MetaStore } from '../adapters/meta-store.js';
import type { ExtentPut } from '../adapters/extent-store.js';
import type { SnapshotTree } from '../snapshot/index.js';
import type { Volume } from '../snapshot/index.js';
import { CODEC_RAW, ExtentCodec, isCodecId } from '../dedup/codec.js';
import { originOf, stampOrigin, volumeKeyOf } from './origin.js';
import { ArenaPool } from './internal/arena-pool.js';
import { checkIncomingGeneration } from './generation-guard.js';
import type { BeginRequest, BeginResponse, HeldSnapshot, ReplicationPort, WireBlock, WireExtent } from './replication-port.js';

/** Default mapped bytes between durable checkpoints: bounds what a receiver crash makes the sender resend. */
export const DEFAULT_CHECKPOINT_BYTES = 64 * 1024 * 1024;
/** Prefix of staging volume names; Site listings hide them. */
export const STAGING_PREFIX = '.drkit-staging/';
const SESSION_KEY_PREFIX = 'rp/s/';

interface SessionRecord {
  readonly formatVersion: 1;
  readonly request: BeginRequest;
  readonly stagingVolumeId: string;
  cursorBlock: number;
}

/**
 * Bytes of one decode arena (4 MiB, the largest extent the codec accepts): a batch's
 * compressed extents are decoded back to back into as many as they need. Fresh buffers
 * per extent allocated ~540 MB per GiB received that lived only until the put settled.
 */
export const DECODE_ARENA_BYTES = 4 * 1024 * 1024;
/** Idle decode arenas kept (a few batches of compressible data in flight over all connections). */
const MAX_FREE_DECODE_ARENAS = 4;

/** Receiver of replicated snapshots for one site's SnapshotTree. */
export class ReceiverState implements ReplicationPort {
  readonly #tree: SnapshotTree;
  readonly #meta: MetaStore;
  readonly #siteId: string;
  readonly #codec: ExtentCodec;
  readonly #sessions = new Map<string, SessionRecord>();
  readonly #volumes = new Map<string, Volume>();
  readonly #unsavedBytes = new Map<string, number>();
  /** Sessions known to be committed, by id (bounded: only needed between begin and commit). */
  readonly #committedSessions = new Map<string, string>();
  readonly #checkpointBytes: number;
  /** Who is sending each session now (see the header: one sender per snapshot). */
  readonly #owners = new Map<string, object>();
  /** Commits run one after another: the already-committed check and the commit are one step. */
  #commitTail: Promise<unknown> = Promise.resolve();
  /** Where compressed extents are decoded for verification (see {@link DECODE_ARENA_BYTES}). */
  readonly #decodeArenas = new ArenaPool(DECODE_ARENA_BYTES, MAX_FREE_DECODE_ARENAS);

  private constructor(tree: SnapshotTree, meta: MetaStore, siteId: string, codec: ExtentCodec, checkpointBytes: number) {
    this.#tree = tree;
    this.#meta = meta;
    this.#siteId = siteId;
    this.#codec = codec;
    this.#checkpointBytes = checkpointBytes;
  }

  /**
   * Loads checkpointed sessions. `meta` is where session records live (usually the tree's
   * MetaStore). `checkpointBytes`: mapped bytes between durable checkpoints.
   * @defaultValue checkpointBytes = DEFAULT_CHECKPOINT_BYTES (64 MiB)
   */
  static async open(tree: SnapshotTree, meta: MetaStore, siteId: string, options: { checkpointBytes?: number } = {}): Promise<ReceiverState> {
    const checkpointBytes = options.checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES;
    if (!Number.isSafeInteger(checkpointBytes) || checkpointBytes <= 0) throw new DrkitError('INVALID_ARGUMENT', 'checkpointBytes must be a positive integer');
    const state = new ReceiverState(tree, meta, siteId, await ExtentCodec.open(), checkpointBytes);
    for await (const [, value] of meta.iterate({ prefix: utf8(SESSION_KEY_PREFIX) })) {
      const record = JSON.parse(new TextDecoder().decode(value)) as SessionRecord;
      if (record.formatVersion !== 1) throw new DrkitError('FORMAT_VERSION', 'unknown replication session record version');
      state.#sessions.set(record.request.sessionId, record);
    }
    return state;
  }

  async list(volumeKey: string): Promise<HeldSnapshot[]> {
    return this.#tree
      .listSnapshots()
      .map((s) => ({ s, o: originOf(s, this.#siteId) }))
      .filter(({ o }) => volumeKeyOf(o) === volumeKey)
      .map(({ s, o }) => ({ originSiteId: o.siteId, originSnapshotId: o.snapshotId, snapshotId: s.id, createdMs: s.createdMs }));
  }

  /**
   * Opens or resumes a session (see ReplicationPort.begin). With `owner`, the session is
   * held by it from now on.
   * @throws BUSY (another owner is receiving this snapshot), STALE_GENERATION, DIVERGED, INVALID_ARGUMENT
   */
  async begin(request: BeginRequest, owner?: object): Promise<BeginResponse> {
    validateBegin(request);
    const committed = this.#findCommitted(request.originSiteId, request.originSnapshotId);
    if (committed !== undefined) {
      this.#rememberCommitted(request.sessionId, committed);
      return { resumeBlock: request.byteLength / request.blockBytes, baseFound: true, committedSnapshotId: committed };
    }
    // Split-brain safety, before anything is stored: a stale generation, or a lineage this
    // site still holds writable, is refused (STALE_GENERATION / DIVERGED).
    await checkIncomingGeneration({ tree: this.#tree, meta: this.#meta, siteId: this.#siteId }, request.volumeKey, request.snapshot.userMetadata);
    if (owner !== undefined) this.#claimSnapshot(request, owner);
    const existing = this.#sessions.get(request.sessionId);
    if (existing !== undefined && sameTransfer(existing.request, request)) {
      return { resumeBlock: existing.cursorBlock, baseFound: true };
    }
    if (existing !== undefined) await this.#drop(request.sessionId);
    let staging: Volume;
    let baseFound = true;
    const base = request.baseOriginSnapshotId === undefined ? undefined : this.#findCommitted(request.baseOriginSiteId ?? request.originSiteId, request.baseOriginSnapshotId, request.volumeKey);
    if (request.baseOriginSnapshotId !== undefined && base === undefined) {
      baseFound = false;
      return { resumeBlock: 0, baseFound };
    }
    const name = `${STAGING_PREFIX}${request.sessionId}`;
    if (base !== undefined) {
      const baseInfo = this.#tree.getSnapshot(base);
      if (baseInfo.byteLength !== request.byteLength || baseInfo.blockBytes !== request.blockBytes) {
        throw new DrkitError('INVALID_ARGUMENT', `base ${base} does not match the replicated volume's geometry`, { data: { base } });
      }
      staging = await this.#tree.clone(base, { name });
    } else {
      staging = await this.#tree.createVolume({ name, byteLength: request.byteLength, blockBytes: request.blockBytes });
    }
    const record: SessionRecord = { formatVersion: 1, request, stagingVolumeId: staging.id, cursorBlock: 0 };
    this.#sessions.set(request.sessionId, record);
    this.#volumes.set(request.sessionId, staging);
    await this.#saveSession(record);
    return { resumeBlock: 0, baseFound };
  }

  async have(fingerprints: readonly Uint8Array[]): Promise<boolean[]> {
    return this.#tree.haveExtents(fingerprints);
  }

  /**
   * Nothing of a batch is kept once `extents()` settles: the ExtentStore copies what it
   * keeps (its put contract) and the decode buffers go back to this receiver's pool, so
   * a Peer may read its next EXTENTS frame into this one's buffer.
   */
  get keepsNoFrameViews(): true {
    return true;
  }

  /**
   * Verifies and stores a batch of extents (see ReplicationPort.extents). Compressed
   * extents are decoded into reused arenas, valid until the put settles: the content is
   * needed only to check its fingerprint and checksum, the store keeps the form that
   * arrived. @throws CORRUPTION (nothing of the batch is stored)
   */
  async extents(extents: readonly WireExtent[]): Promise<void> {
    const arenas: Uint8Array[] = [];
    let arena: Uint8Array | undefined;
    let used = 0;
    try {
      const puts: ExtentPut[] = extents.map((e) => {
        if (!isCodecId(e.codec)) throw new DrkitError('CORRUPTION', `unknown extent codec ${e.codec}`);
        let data: Uint8Array;
        if (e.codec === CODEC_RAW || e.rawLength > this.#decodeArenas.arenaBytes) {
          data = this.#codec.decompress(e.codec, e.data, e.rawLength);
        } else {
          if (arena === undefined || arena.byteLength - used < e.rawLength) {
            arena = this.#decodeArenas.take();
            arenas.push(arena);
            used = 0;
          }
          data = arena.subarray(used, used + e.rawLength);
          this.#codec.decompressInto(e.codec, e.data, e.rawLength, data);
          used += e.rawLength;
        }
        // The sender's checksum goes to the ExtentStore, whose contract verifies it before
        // writing anything of the batch (CORRUPTION otherwise): one hash, not two. The form
        // that arrived goes with it: a store that compresses at rest keeps it as is.
        return { fingerprint: e.fingerprint, data, checksum: e.checksum, ...(e.codec === CODEC_RAW ? { incompressible: true } : { stored: { codec: e.codec, bytes: e.data } }) };
      });
      await this.#tree.putExtents(puts);
    } finally {
      for (const a of arenas) this.#decodeArenas.give(a);
    }
  }

  /** Maps a batch of blocks (see ReplicationPort.blocks). @throws NOT_FOUND, BUSY (the session belongs to another owner) */
  async blocks(sessionId: string, cursorAfter: number, blocks: readonly WireBlock[], owner?: object): Promise<number> {
    const record = this.#session(sessionId);
    this.#checkOwner(sessionId, owner);
    const volume = await this.#volume(record);
    await volume.mapBlocks(blocks.map((b) => ({ blockIndex: b.blockIndex, fingerprint: b.fingerprint })));
    if (cursorAfter > record.cursorBlock) record.cursorBlock = Math.min(cursorAfter, record.request.byteLength / record.request.blockBytes);
    const unsaved = (this.#unsavedBytes.get(sessionId) ?? 0) + blocks.length * record.request.blockBytes;
    if (unsaved >= this.#checkpointBytes) {
      await this.#tree.flush();
      await this.#saveSession(record);
      this.#unsavedBytes.set(sessionId, 0);
    } else {
      this.#unsavedBytes.set(sessionId, unsaved);
    }
    return record.cursorBlock;
  }

  /** Commits sessions atomically (see ReplicationPort.commit). @throws NOT_FOUND, BUSY (a session belongs to another owner), INVALID_ARGUMENT */
  async commit(sessionIds: readonly string[], owner?: object): Promise<string[]> {
    if (sessionIds.length === 0) throw new DrkitError('INVALID_ARGUMENT', 'commit needs at least one session');
    for (const id of sessionIds) this.#checkOwner(id, owner);
    const run = this.#commitTail.then(() => this.#commitNow(sessionIds));
    this.#commitTail = run.catch(() => undefined);
    return run;
  }

  async #commitNow(sessionIds: readonly string[]): Promise<string[]> {
    // Sessions that a begin found already committed (a repeated transfer, a pull of what
    // is already here) answer with their snapshots, so every transfer ends in a commit.
    const remembered = sessionIds.map((id) => this.#committedSessions.get(id));
    if (remembered.every((id) => id !== undefined)) return remembered as string[];
    // Idempotent: sessions already committed (a retried commit) answer with their snapshot.
    const already = sessionIds.map((id) => {
      const r = this.#sessions.get(id);
      return r === undefined ? undefined : this.#findCommitted(r.request.originSiteId, r.request.originSnapshotId);
    });
    const records = sessionIds.map((id) => this.#sessions.get(id));
    if (records.some((r) => r === undefined)) {
      throw new DrkitError('NOT_FOUND', 'commit names an unknown replication session', { data: { sessionIds: [...sessionIds] } });
    }
    const recs = records as SessionRecord[];
    let ids: string[];
    if (already.every((a) => a !== undefined)) {
      ids = already as string[];
    } else {
      const first = recs[0]!.request;
      const volumes = recs.map((r) => r.stagingVolumeId);
      const userMetadataByVolume: Record<string, Record<string, string>> = {};
      for (const r of recs) {
        userMetadataByVolume[r.stagingVolumeId] = stampOrigin(r.request.snapshot.userMetadata, {
          siteId: r.request.originSiteId,
          snapshotId: r.request.originSnapshotId,
          volumeId: r.request.originVolumeId,
          lineage: r.request.volumeKey,
        });
      }
      const imported = { createdMs: first.snapshot.createdMs, consistency: first.snapshot.consistency, ...(first.snapshot.fallbackReason ? { fallbackReason: first.snapshot.fallbackReason } : {}) };
      const infos = recs.length === 1
        ? [await this.#tree.snapshot(volumes[0]!, { name: first.snapshot.name, userMetadataByVolume, imported })]
        : await this.#tree.snapshotGroup(volumes, { name: first.snapshot.name, userMetadataByVolume, imported });
      ids = infos.map((i) => i.id);
    }
    for (const id of sessionIds) await this.#drop(id);
    return ids;
  }

  #rememberCommitted(sessionId: string, snapshotId: string): void {
    const MAX_REMEMBERED_SESSIONS = 4096; // a begin and its commit are one transfer apart
    this.#committedSessions.delete(sessionId);
    this.#committedSessions.set(sessionId, snapshotId);
    if (this.#committedSessions.size > MAX_REMEMBERED_SESSIONS) this.#committedSessions.delete(this.#committedSessions.keys().next().value!);
  }

  /** Ends `owner`'s hold on its sessions (its connection ended); they stay checkpointed for a resume by anyone. */
  release(owner: object): void {
    for (const [sessionId, holder] of this.#owners) if (holder === owner) this.#owners.delete(sessionId);
  }

  /**
   * Makes `owner` the sender of `request`'s session, unless another owner is receiving the
   * same snapshot (by origin) under any session.
   * @throws BUSY
   */
  #claimSnapshot(request: BeginRequest, owner: object): void {
    for (const [sessionId, holder] of this.#owners) {
      if (holder === owner) continue;
      const other = this.#sessions.get(sessionId)?.request;
      if (sessionId === request.sessionId || (other !== undefined && other.originSiteId === request.originSiteId && other.originSnapshotId === request.originSnapshotId)) {
        throw new DrkitError('BUSY', `snapshot ${request.originSiteId}/${request.originSnapshotId} is being received from another sender: retry when it is done`, {
          data: { sessionId: request.sessionId, busySessionId: sessionId, reason: 'concurrent-sender' },
        });
      }
    }
    this.#owners.set(request.sessionId, owner);
  }

  /** @throws BUSY when `owner` is given and another owner holds `sessionId` */
  #checkOwner(sessionId: string, owner: object | undefined): void {
    if (owner === undefined) return;
    const holder = this.#owners.get(sessionId);
    if (holder !== undefined && holder !== owner) {
      throw new DrkitError('BUSY', `replication session ${sessionId} belongs to another sender`, { data: { sessionId, reason: 'concurrent-sender' } });
    }
  }

  /** Forgets a session and deletes its staging volume. */
  async #drop(sessionId: string): Promise<void> {
    this.#owners.delete(sessionId);
    const record = this.#sessions.get(sessionId);
    if (record === undefined) return;
    await this.#volumes.get(sessionId)?.close();
    this.#volumes.delete(sessionId);
    this.#unsavedBytes.delete(sessionId);
    if (this.#tree.listVolumes().some((v) => v.id === record.stagingVolumeId)) await this.#tree.deleteVolume(record.stagingVolumeId);
    await this.#meta.batch([{ kind: 'del', key: utf8(SESSION_KEY_PREFIX + sessionId) }], { sync: true });
    this.#sessions.delete(sessionId);
  }

  /**
   * Remote retention: deletes the replicas of the named snapshots. Only replicas of the
   * requester's own snapshots (origin site = requester) are touched; a replica in use (a
   * reader, a diff) is skipped. Returns the ids deleted.
   */
  async prune(requesterSiteId: string, snapshots: readonly { originSiteId: string; originSnapshotId: string }[]): Promise<string[]> {
    const deleted: string[] = [];
    for (const ref of snapshots) {
      if (ref.originSiteId !== requesterSiteId) continue;
      const id = this.#findCommitted(ref.originSiteId, ref.originSnapshotId);
      if (id === undefined) continue;
      try {
        await this.#tree.deleteSnapshot(id);
        deleted.push(id);
      } catch (err) {
        if (!(err instanceof DrkitError && err.code === 'BUSY')) throw err;
      }
    }
    return deleted;
  }

  /** Abandons a session (the sender cancelled). @throws BUSY (the session belongs to another owner) */
  async abort(sessionId: string, owner?: object): Promise<void> {
    this.#checkOwner(sessionId, owner);
    await this.#drop(sessionId);
  }

  /** Releases open staging handles (sessions stay checkpointed for resumption). */
  async close(): Promise<void> {
    for (const v of this.#volumes.values()) await v.close();
    this.#volumes.clear();
  }

  #findCommitted(originSiteId: string, originSnapshotId: string, volumeKey?: string): string | undefined {
    for (const s of this.#tree.listSnapshots()) {
      const o = originOf(s, this.#siteId);
      if (o.siteId === originSiteId && o.snapshotId === originSnapshotId && (volumeKey === undefined || volumeKeyOf(o) === volumeKey)) return s.id;
    }
    return undefined;
  }

  #session(sessionId: string): SessionRecord {
    const r = this.#sessions.get(sessionId);
    if (r === undefined) throw new DrkitError('NOT_FOUND', `no replication session ${sessionId}`, { data: { sessionId } });
    return r;
  }

  async #volume(record: SessionRecord): Promise<Volume> {
    let v = this.#volumes.get(record.request.sessionId);
    if (v === undefined) {
      v = await this.#tree.openVolume(record.stagingVolumeId);
      this.#volumes.set(record.request.sessionId, v);
    }
    return v;
  }

  async #saveSession(record: SessionRecord): Promise<void> {
    await this.#meta.batch([{ kind: 'put', key: utf8(SESSION_KEY_PREFIX + record.request.sessionId), value: utf8(JSON.stringify(record)) }], { sync: true });
  }
}

function sameTransfer(a: BeginRequest, b: BeginRequest): boolean {
  return a.originSiteId === b.originSiteId && a.originSnapshotId === b.originSnapshotId && a.baseOriginSnapshotId === b.baseOriginSnapshotId && a.baseOriginSiteId === b.baseOriginSiteId && a.byteLength === b.byteLength && a.blockBytes === b.blockBytes;
}

function validateBegin(r: BeginRequest): void {
  for (const [k, v] of Object.entries({ sessionId: r.sessionId, volumeKey: r.volumeKey, originSiteId: r.originSiteId, originSnapshotId: r.originSnapshotId, originVolumeId: r.originVolumeId })) {
    // The protocol's id bound, from its one source (in-process callers meet it too).
    if (typeof v !== 'string' || v.length === 0 || utf8ByteLength(v) > MAX_ID_BYTES) throw new DrkitError('INVALID_ARGUMENT', `begin: ${k} must be a non-empty string`, { data: { field: k } });
  }
  if (!Number.isSafeInteger(r.byteLength) || r.byteLength <= 0 || !Number.isSafeInteger(r.blockBytes) || r.blockBytes <= 0 || r.byteLength % r.blockBytes !== 0) {
    throw new DrkitError('INVALID_ARGUMENT', 'begin: bad volume geometry', { data: { byteLength: r.byteLength, blockBytes: r.blockBytes } });
  }
}
