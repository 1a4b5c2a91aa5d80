/**
 * Site: one failure domain (a cluster) — a SnapshotTree (its volumes, snapshots and
 * extents) reachable through a Transport. A site serves replication to peers that
 * authenticate (pre-shared key per peer site, and/or TLS certificates), sends its
 * snapshots to any set of remote sites (many-to-many), and pulls snapshots back.
 * A storage-only site (a backup target) receives and keeps snapshots and serves them
 * back, but holds no writable volumes of its own.
 *
 * Generation promise: before sending or pulling anything, `replicate()` and `pull()` ask
 * the peer for its status of the lineage (STATUS_REQ) and refuse, on their own, a stale
 * peer or side (STALE_GENERATION), a newer generation onto a side that still writes the
 * lineage, and any transfer between two sides that both write it (DIVERGED); the receiver
 * checks again at BEGIN.
 *
 * Remote options promise: every connection to a remote with `proxyAddress` goes to that
 * relay, the handshake still proving `siteId` end to end; `replicate()` to a remote with
 * `maxBytesPerSecond` shares one token bucket with every other transfer to it from this
 * site (unless the call sets its own limit); `promoteRemote()` refuses a `storageOnly`
 * remote before connecting.
 *
 * Retry promise: `replicate()` and `pull()` retry transient failures (lost or refused
 * connections, timeouts) with exponential backoff on the site's clock; each retry resumes
 * the same session, so nothing the receiver acknowledged is sent again.
 */
import { AbortError, DrkitError, isDrkitError, throwIfAborted } from '../core/errors.js';
import { loadXxh64, type Xxh64 } from '../core/checksum.js';
import type { Clock } from '../adapters/clock.js';
import type { MetaStore } from '../adapters/meta-store.js';
import type { Listener, PeerInfo, Transport } from '../adapters/transport.js';
import { SystemClock } from '../adapters/system-clock.js';
import { ExtentCodec } from '../dedup/codec.js';
import { CodecPool } from '../dedup/codec-pool.js';
import type { SnapshotInfo, SnapshotTree } from '../snapshot/index.js';
import { clientHandshake, serverHandshake } from './internal/handshake.js';
import { Peer, type ControlHandler, type PeerReceiver } from './internal/peer.js';
import { progressReceiver } from './internal/progress-receiver.js';
import { restoreToDevice, type DeviceRestoreContext, type DeviceRestoreOptions, type DeviceRestoreResult } from './device-restore.js';
import type { BlockDevice } from '../adapters/block-device.js';
import { checkTransferGenerations } from './generation-guard.js';
import { readLineageStatus } from './lineage-record.js';
import { generationOf, originOf, volumeKeyOf } from './origin.js';
import { demoteForPeer, promoteForPeer, statusForPeer, type RemoteDemotion, type RemoteDemotionResult, type RemoteLineageStatus, type RemotePromotion, type RemotePromotionResult } from './remote-control.js';
import { ReceiverState, STAGING_PREFIX } from './receiver-state.js';
import { replicateSnapshots, type ReplicateOptions, type ReplicationResult, type SenderContext } from './sender.js';
import type { HeldSnapshot } from './replication-port.js';
import { Throttle } from './throttle.js';
import { LwsJournal } from './lws-journal.js';
import { LwsShipper, type LwsSessionOptions } from './lws-shipper.js';
import type { LwsHandler } from './internal/peer.js';

/**
 * How to reach and trust another site. The connection half of the one RemoteSite
 * concept: `drkit/policy`'s RemoteSite (the configuration) maps onto it with
 * `replicationRemoteOf`, its `id` being this `siteId`.
 */
export interface RemoteSite {
  /** The remote site's id (checked during the handshake). */
  readonly siteId: string;
  /** Transport address ("host:port"). */
  readonly address: string;
  /**
   * A relay (`drkit relay --listen PROXY --to ADDRESS`) to connect to instead of
   * `address`: it forwards the byte stream; the handshake and every authenticated frame
   * still run end to end with `siteId`, so the relay holds no key. @defaultValue undefined (direct)
   */
  readonly proxyAddress?: string;
  /**
   * Bandwidth cap towards this site: the default `bandwidthBytesPerSec` of transfers to
   * it. @defaultValue undefined (unlimited)
   */
  readonly maxBytesPerSecond?: number;
  /** The site is a backup target: never a promotion or failover target of policy code. @defaultValue false */
  readonly storageOnly?: boolean;
  readonly transport: Transport;
  /** Pre-shared key with that site (at least 16 bytes); optional when TLS identifies it. */
  readonly psk?: Uint8Array;
  /** TLS identity check of the remote's certificate. */
  readonly authenticate?: (peer: PeerInfo, siteId: string) => boolean;
  /** Connect deadline. @defaultValue 10000 */
  readonly connectTimeoutMs?: number;
}

/** Options of {@link Site.open}. */
export interface SiteOptions {
  readonly siteId: string;
  readonly tree: SnapshotTree;
  /** Where replication session state lives (usually the tree's MetaStore). */
  readonly meta: MetaStore;
  /** @defaultValue new SystemClock() */
  readonly clock?: Clock;
  /** Keys of the peer sites allowed to connect, by their site id. */
  readonly peerKeys?: (siteId: string) => Uint8Array | undefined;
  /** Certificate-based identity check for TLS peers. */
  readonly authenticatePeer?: (peer: PeerInfo, siteId: string) => boolean;
  /**
   * A backup target: it receives, keeps and serves back snapshots but holds no writable
   * volumes of its own (opening a storage-only site over a tree with volumes fails with
   * INVALID_ARGUMENT). Failover will refuse to promote onto it. @defaultValue false
   */
  readonly storageOnly?: boolean;
  /** Idle time after which a silent connection fails (TIMEOUT). @defaultValue 120000 */
  readonly idleTimeoutMs?: number;
  /** Received bytes between durable checkpoints of a transfer. @defaultValue 64 MiB */
  readonly checkpointBytes?: number;
  /**
   * Worker threads that compress outgoing extents with the site's codec (zstd by default),
   * 0 = on the calling thread. Pays when a core is free: on a loaded 2-core machine one
   * worker measured no faster (docs/benchmarks.md, issue #13). @defaultValue 0
   */
  readonly compressionWorkers?: number;
  /**
   * Whether authenticated peer `peerSiteId` may hand `lineage` over to this site (a remote
   * promotion, PROMOTE_REQ). Checked on top of the built-in rule that only the lineage's
   * last writer, whose final snapshot is held here, may. @defaultValue undefined (the built-in rule alone)
   */
  readonly allowRemotePromotion?: (peerSiteId: string, lineage: string) => boolean;
}

/** Options of {@link Site.replicate} and {@link Site.pull}. */
export interface SiteTransferOptions extends ReplicateOptions {
  /** Attempts after the first on transient failures. @defaultValue 5 */
  retries?: number;
  /** First backoff; doubles per attempt up to 30 s. @defaultValue 500 */
  retryDelayMs?: number;
}

/** A site: stores, snapshots and replication endpoints. */
export class Site {
  readonly siteId: string;
  readonly tree: SnapshotTree;
  readonly storageOnly: boolean;
  /** Where this site's replication and failover state lives (see {@link SiteOptions.meta}). */
  readonly meta: MetaStore;
  readonly #options: SiteOptions;
  readonly #clock: Clock;
  readonly #receiver: ReceiverState;
  readonly #sender: SenderContext;
  readonly #listeners: Listener[] = [];
  readonly #peers = new Set<Peer>();
  readonly #throttles = new Map<string, Throttle>();

  readonly #pool: CodecPool | undefined;
  /** NearSync sessions received here (the target half; see lws-journal.ts). */
  readonly lws: LwsJournal;
  readonly #lwsHandler: LwsHandler;
  readonly #control: ControlHandler = {
    status: (query) => statusForPeer(this, query),
    promote: (peerSiteId, members) => promoteForPeer(this, peerSiteId, members, this.#options.allowRemotePromotion),
    demote: (peerSiteId, members) => demoteForPeer(this, peerSiteId, members),
  };

  private constructor(options: SiteOptions, receiver: ReceiverState, codec: ExtentCodec, xxh: Xxh64, clock: Clock, pool: CodecPool | undefined, lws: LwsJournal) {
    this.lws = lws;
    this.#lwsHandler = {
      open: (peerSiteId, sessionId, baseMarkerSeq, members, sourceLogId) => lws.open(peerSiteId, sessionId, baseMarkerSeq, members, sourceLogId),
      append: (peerSiteId, sessionId, records) => lws.append(peerSiteId, sessionId, records),
      have: (peerSiteId, sessionId, fingerprints) => lws.have(peerSiteId, sessionId, fingerprints),
    };
    this.siteId = options.siteId;
    this.tree = options.tree;
    this.storageOnly = options.storageOnly === true;
    this.meta = options.meta;
    this.#options = options;
    this.#clock = clock;
    this.#receiver = receiver;
    this.#pool = pool;
    this.#sender = { tree: options.tree, siteId: options.siteId, codec, xxh, clock, ...(pool === undefined ? {} : { codecPool: pool }) };
  }

  /** @throws INVALID_ARGUMENT for a bad site id */
  static async open(options: SiteOptions): Promise<Site> {
    if (typeof options.siteId !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(options.siteId)) {
      throw new DrkitError('INVALID_ARGUMENT', 'siteId must be 1-64 characters of [A-Za-z0-9._-]', { data: { siteId: String(options.siteId) } });
    }
    const clock = options.clock ?? new SystemClock();
    if (options.storageOnly === true) {
      const own = options.tree.listVolumes().filter((v) => !v.name.startsWith(STAGING_PREFIX));
      if (own.length > 0) {
        throw new DrkitError('INVALID_ARGUMENT', `a storage-only site holds no volumes, but this tree has ${own.length}`, { data: { volumeIds: own.map((v) => v.id) } });
      }
    }
    const receiver = await ReceiverState.open(options.tree, options.meta, options.siteId, options.checkpointBytes === undefined ? {} : { checkpointBytes: options.checkpointBytes });
    const workers = options.compressionWorkers ?? 0;
    const pool = workers > 0 ? await CodecPool.open({ workerCount: workers }) : undefined;
    const codec = await ExtentCodec.open();
    const xxh = await loadXxh64();
    const lws = await LwsJournal.open(options.meta, options.tree, options.siteId, xxh, codec);
    return new Site(options, receiver, codec, xxh, clock, pool, lws);
  }

  /** Snapshots held here, without replication staging. */
  listSnapshots(filter: { volumeId?: string } = {}): SnapshotInfo[] {
    return this.tree.listSnapshots(filter);
  }

  /** Volumes held here, without replication staging volumes. */
  listVolumes(): ReturnType<SnapshotTree['listVolumes']> {
    return this.tree.listVolumes().filter((v) => !v.name.startsWith(STAGING_PREFIX));
  }

  /**
   * Serves replication (receive, list, pull) on `transport` at `address`.
   * @throws the transport's listen errors
   */
  async listen(transport: Transport, address: string): Promise<Listener> {
    const listener = await transport.listen(address, {
      onConnection: (connection) => {
        void (async () => {
          const handshake = await serverHandshake(connection, {
            siteId: this.siteId,
            clock: this.#clock,
            idleTimeoutMs: this.#options.idleTimeoutMs ?? 120_000,
            ...(this.#options.peerKeys === undefined ? {} : { pskFor: this.#options.peerKeys }),
            ...(this.#options.authenticatePeer === undefined ? {} : { authenticate: this.#options.authenticatePeer }),
          });
          const peer = new Peer(connection, handshake, {
            receiver: this.#receiver,
            clock: this.#clock,
            control: this.#control,
            lws: this.#lwsHandler,
            onPull: (p, snapshotId) => this.#servePull(p, snapshotId),
          });
          this.#peers.add(peer);
          await peer.done;
          this.#peers.delete(peer);
        })().catch(() => undefined); // the handshake closed the connection with a coded error
      },
    });
    this.#listeners.push(listener);
    return listener;
  }

  /**
   * Replicates a snapshot — or the members of a consistency group, committed together —
   * to `remote`: incremental against the newest snapshot both hold, deduplicated against
   * everything the remote stores, compressed, verified, resumable.
   * @throws NOT_FOUND, AUTH_FAILED, CORRUPTION, ABORTED, and transient codes once retries are spent
   */
  async replicate(snapshotIds: string | readonly string[], remote: RemoteSite, options: SiteTransferOptions = {}): Promise<ReplicationResult> {
    const ids = typeof snapshotIds === 'string' ? [snapshotIds] : [...snapshotIds];
    for (const id of ids) this.tree.getSnapshot(id);
    return this.#withPeer(remote, options, async (peer) => {
      for (const id of ids) {
        const snapshot = this.tree.getSnapshot(id);
        const lineage = volumeKeyOf(originOf(snapshot, this.siteId));
        checkTransferGenerations(await peer.status({ lineage }), await readLineageStatus(this, lineage), generationOf(snapshot));
      }
      const wire = () => peer.wireBytesWritten + peer.wireBytesRead;
      const throttled = this.#throttled(remote, options);
      const onProgress = options.onProgress;
      // Cancellation at any point, not only between batches: the connection fails and every call in flight rejects.
      const onAbort = () => void peer.fail(new AbortError('replication aborted', { cause: options.signal?.reason }));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const result = await replicateSnapshots(this.#sender, peer.port(), remote.siteId, ids, onProgress === undefined ? throttled : { ...throttled, onProgress: (p) => onProgress({ ...p, wireBytes: wire() }) });
        return { ...result, progress: { ...result.progress, wireBytes: wire() } };
      } catch (err) {
        throwIfAborted(options.signal);
        throw err;
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
      }
    });
  }

  /**
   * Pulls snapshot `remoteSnapshotId` of `remote` here (restore from a remote site): only
   * what this site lacks crosses the wire. Resolves with the local snapshot.
   */
  async pull(remote: RemoteSite, remoteSnapshotId: string, options: SiteTransferOptions = {}): Promise<SnapshotInfo> {
    return this.#withRetries(options, async () => {
      let connected: Peer | undefined;
      const counting = progressReceiver(this.#receiver, options.onProgress, () => (connected === undefined ? 0 : connected.wireBytesRead + connected.wireBytesWritten));
      const peer = await this.#connect(remote, options.signal, counting.receiver);
      connected = peer;
      // Cancellation at any point: the connection fails, every call in flight rejects, the session stays checkpointed.
      const onAbort = () => void peer.fail(new AbortError('pull aborted', { cause: options.signal?.reason }));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const theirs = await peer.status({ snapshotId: remoteSnapshotId });
        checkTransferGenerations(await readLineageStatus(this, theirs.lineage), theirs, theirs.snapshotGeneration ?? 0);
        const [id] = await peer.pull(remoteSnapshotId);
        options.onProgress?.(counting.progress());
        return this.tree.getSnapshot(id!);
      } catch (err) {
        throwIfAborted(options.signal);
        throw err;
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
        await peer.close();
      }
    });
  }

  /**
   * Restores snapshot `remoteSnapshotId` of `remote` straight into `device` (a raw file or
   * a block special file): blocks stream in order, verified, with no local extent store in
   * between; resumable through `options.checkpoints`; `onProgress` and `signal` honoured
   * throughout (see device-restore.ts). The device is flushed when it resolves.
   * @throws NOT_FOUND, INVALID_ARGUMENT (device too small and not resizable), CORRUPTION, ABORTED, AUTH_FAILED, and transient codes once retries are spent
   */
  async restoreToDevice(remote: RemoteSite, remoteSnapshotId: string, device: BlockDevice, options: DeviceRestoreOptions = {}): Promise<DeviceRestoreResult> {
    const ctx: DeviceRestoreContext = {
      codec: this.#sender.codec,
      connect: (receiver, signal) => this.#connect(remote, signal, receiver),
      withRetries: (attempt) => this.#withRetries({ ...(options.signal === undefined ? {} : { signal: options.signal }), ...(options.retries === undefined ? {} : { retries: options.retries }), ...(options.retryDelayMs === undefined ? {} : { retryDelayMs: options.retryDelayMs }) }, attempt),
    };
    return restoreToDevice(ctx, remoteSnapshotId, device, options);
  }

  /**
   * What `remote` holds of a volume lineage (`volumeKeyOf(originOf(snapshot))`), by origin:
   * the facts remote retention and RPO tracking plan with.
   */
  async listRemote(remote: RemoteSite, volumeKey: string, options: SiteTransferOptions = {}): Promise<HeldSnapshot[]> {
    return this.#withPeer(remote, options, async (peer) => {
      return await peer.port().list(volumeKey);
    });
  }

  /**
   * `remote`'s status of a lineage — its generation and whether it writes it — named
   * directly or as the lineage of one of its snapshots (STATUS_REQ).
   * @throws NOT_FOUND (an unknown snapshot there), AUTH_FAILED, and transient codes once retries are spent
   */
  async remoteStatus(remote: RemoteSite, query: { lineage: string } | { snapshotId: string }, options: SiteTransferOptions = {}): Promise<RemoteLineageStatus> {
    return this.#withPeer(remote, options, async (peer) => {
      return await peer.status(query);
    });
  }

  /**
   * Hands lineages this site last wrote over to `remote` (PROMOTE_REQ): it promotes every
   * member from its final snapshot, all or none, idempotently (see remote-control.ts).
   * @throws INVALID_ARGUMENT with `data.reason: 'storage-only'` before connecting when `remote.storageOnly`;
   *   the codes of the remote's promotion (NOT_FOUND, ALREADY_EXISTS, STALE_GENERATION,
   *   INVALID_ARGUMENT, AUTH_FAILED), and transient codes once retries are spent
   */
  async promoteRemote(remote: RemoteSite, members: readonly RemotePromotion[], options: SiteTransferOptions = {}): Promise<RemotePromotionResult[]> {
    if (members.length === 0) throw new DrkitError('INVALID_ARGUMENT', 'promoteRemote needs at least one lineage', { data: { field: 'members' } });
    if (remote.storageOnly === true) {
      throw new DrkitError('INVALID_ARGUMENT', `site ${remote.siteId} is configured storage-only: it holds replicas, never a writable volume`, { data: { siteId: remote.siteId, reason: 'storage-only' } });
    }
    return this.#withPeer(remote, options, async (peer) => {
      return await peer.promote(members);
    });
  }

  /**
   * Takes back lineages this site handed over to `remote` (DEMOTE_REQ, a migration rolled
   * back after the promotion): `remote` goes back to a replica of each at its
   * `sourceGeneration`, all or none, idempotently (see remote-control.ts).
   * @throws INVALID_ARGUMENT (no members), the codes of the remote's demotion (AUTH_FAILED,
   *   STALE_GENERATION, DIVERGED), and transient codes once retries are spent
   */
  async demoteRemote(remote: RemoteSite, members: readonly RemoteDemotion[], options: SiteTransferOptions = {}): Promise<RemoteDemotionResult[]> {
    if (members.length === 0) throw new DrkitError('INVALID_ARGUMENT', 'demoteRemote needs at least one lineage', { data: { field: 'members' } });
    return this.#withPeer(remote, options, async (peer) => {
      return await peer.demote(members);
    });
  }

  /**
   * Remote retention: asks `remote` to delete its replicas of these snapshots of this
   * site (by their ids here). Resolves with the remote ids deleted.
   */
  async pruneRemote(remote: RemoteSite, snapshotIds: readonly string[], options: SiteTransferOptions = {}): Promise<string[]> {
    if (snapshotIds.length === 0) return [];
    const refs = snapshotIds.map((id) => ({ originSiteId: this.siteId, originSnapshotId: id }));
    return this.#withPeer(remote, options, async (peer) => {
      const MAX_PER_REQUEST = 256; // the protocol's bound per PRUNE_REQ
      const deleted: string[] = [];
      for (let i = 0; i < refs.length; i += MAX_PER_REQUEST) deleted.push(...(await peer.prune(refs.slice(i, i + MAX_PER_REQUEST))));
      return deleted;
    });
  }

  /** A remote's `maxBytesPerSecond` bounds all transfers to it together: one limiter per site and rate. */
  #throttled(remote: RemoteSite, options: SiteTransferOptions): SiteTransferOptions {
    if (options.throttle !== undefined || options.bandwidthBytesPerSec !== undefined || remote.maxBytesPerSecond === undefined) return options;
    const key = `${remote.siteId}/${remote.maxBytesPerSecond}`;
    let throttle = this.#throttles.get(key);
    if (throttle === undefined) this.#throttles.set(key, (throttle = new Throttle(remote.maxBytesPerSecond, this.#clock)));
    return { ...options, throttle };
  }

  /** Stops listening and closes connections; session state stays for resumption. */
  /**
   * A NearSync session towards `remote`: light-weight snapshots of `options.volumeIds`
   * shipped from this site's write log over one kept connection (see lws-shipper.ts).
   * @throws INVALID_ARGUMENT without volumes
   */
  nearSync(remote: RemoteSite, options: LwsSessionOptions): LwsShipper {
    return new LwsShipper({ tree: this.tree, codec: this.#sender.codec, xxh: this.#sender.xxh, clock: this.#clock, connect: () => this.#connect(remote, undefined) }, remote.siteId, options);
  }

  async close(): Promise<void> {
    for (const l of this.#listeners) await l.close();
    this.#listeners.length = 0;
    for (const p of this.#peers) await p.close();
    this.#peers.clear();
    await this.#receiver.close();
    await this.#pool?.close();
  }

  async #servePull(peer: Peer, snapshotId: string): Promise<void> {
    this.tree.getSnapshot(snapshotId);
    await replicateSnapshots(this.#sender, peer.port(), peer.peerSiteId, [snapshotId]);
  }

  async #connect(remote: RemoteSite, signal: AbortSignal | undefined, receiver: PeerReceiver = this.#receiver): Promise<Peer> {
    // Through a relay, only the first hop changes: the handshake below still names and proves remote.siteId.
    const connection = await remote.transport.connect(remote.proxyAddress ?? remote.address, { timeoutMs: remote.connectTimeoutMs ?? 10_000, ...(signal === undefined ? {} : { signal }) });
    const handshake = await clientHandshake(connection, {
      siteId: this.siteId,
      clock: this.#clock,
      expectedPeerSiteId: remote.siteId,
      idleTimeoutMs: this.#options.idleTimeoutMs ?? 120_000,
      ...(remote.psk === undefined ? {} : { psk: remote.psk }),
      ...(remote.authenticate === undefined ? {} : { authenticate: remote.authenticate }),
      ...(signal === undefined ? {} : { signal }),
    });
    return new Peer(connection, handshake, { receiver, clock: this.#clock, control: this.#control, lws: this.#lwsHandler });
  }

  /** Runs `use` on a fresh connection to `remote`, closed afterwards, retrying transient failures on a new one. */
  async #withPeer<T>(remote: RemoteSite, options: SiteTransferOptions, use: (peer: Peer) => Promise<T>): Promise<T> {
    return this.#withRetries(options, async () => {
      const peer = await this.#connect(remote, options.signal);
      try {
        return await use(peer);
      } finally {
        await peer.close();
      }
    });
  }

  async #withRetries<T>(options: SiteTransferOptions, attempt: () => Promise<T>): Promise<T> {
    const retries = options.retries ?? 5;
    let delayMs = options.retryDelayMs ?? 500;
    const MAX_RETRY_DELAY_MS = 30_000; // a site outage is waited out by the caller's schedule, not here
    for (let n = 0; ; n++) {
      throwIfAborted(options.signal);
      try {
        return await attempt();
      } catch (err) {
        if (n >= retries || !isDrkitError(err) || !err.transient || err.code === 'ABORTED') throw err;
        await this.#clock.sleep(delayMs, options.signal === undefined ? {} : { signal: options.signal });
        delayMs = Math.min(MAX_RETRY_DELAY_MS, delayMs * 2);
      }
    }
  }
}
