/**
 * MirroredVolume: one side of a Metro pair — a local block device mirrored synchronously
 * to the peer site, with a witness deciding which side may write.
 *
 * Promises (docs/architecture.md "Metro", docs/recovery.md):
 * - RPO 0 while mirrored: `write()` resolves only when the local device AND the peer have
 *   the write durable ('durable' mode, DRBD protocol C; 'received' mode resolves once the
 *   peer received it, and `flush()` is the barrier that makes both sides durable). Writes
 *   reach the peer in call order on one connection; reads are local.
 * - Never two writable sides: only the side with the role 'active' writes. An active side
 *   that loses its peer continues alone ('degraded') only after the witness recorded the
 *   peer as outdated under a valid lease; without peer and witness it is 'suspended'
 *   (writes fail SUSPENDED) unless an operator calls `force()` (recorded in the state
 *   record). A standby that loses the active side asks the witness for the lease and
 *   takes over when the old lease expired — never while it is outdated.
 * - No lost dirty bit: a region is marked durably (DirtyRegions) before the local write
 *   of every write; bits are cleared only for regions both sides are known to hold alike
 *   (after a mirrored flush barrier, or a verified resync).
 * - Delta resync: when the active side attaches to the standby, the union of both sides'
 *   dirty regions moves from the active side (the higher lease term: a stale side is
 *   refused with STALE_GENERATION and demotes itself), fingerprint-verified, and then
 *   mirroring resumes. Writes wait while a resync runs.
 */
import type { BlockDevice, IoOptions } from '../adapters/block-device.js';
import type { Clock, TimerHandle } from '../adapters/clock.js';
import type { Connection, Listener, Transport } from '../adapters/transport.js';
import { DrkitError, toDrkitError } from '../core/errors.js';
import { assertBytes, assertPositiveInteger, assertRange } from '../core/validate.js';
import { clientHandshake } from '../replication/internal/handshake.js';
import { DirtyRegions } from './dirty-regions.js';
import { expectMetro, jsonOf, MAX_METRO_DATA_BYTES, writeJson } from './internal/metro-messages.js';
import { MirrorLink } from './internal/mirror-link.js';
import { StateStore, type MetroRole } from './internal/state-record.js';
import { serveMetroPeer, MAX_PEER_QUEUE_BYTES, type MirrorMode, type PeerHost } from './metro-peer.js';
import { resyncRegions, type ResyncResult } from './resync.js';
import { WitnessClient } from './witness-client.js';
import type { LeaseGrant } from './witness.js';

/** Default silence after which the peer counts as lost: 2 s (pings run at a quarter of it). */
export const DEFAULT_PEER_TIMEOUT_MS = 2000;
/** Default period of lease renewals and takeover attempts: 250 ms (a takeover lands within one period of the expiry). */
export const DEFAULT_POLL_MS = 250;
/** Bytes of writes in flight to the peer at once: the peer queues no more (MAX_PEER_QUEUE_BYTES). */
export const MAX_INFLIGHT_BYTES = MAX_PEER_QUEUE_BYTES / 2;

/** What a side is doing. */
export type MetroStatus = 'mirrored' | 'resyncing' | 'degraded' | 'suspended' | 'standby' | 'closed';

/** Something that happened to a side (for logs and tests). */
export interface MetroEvent {
  readonly kind: 'status' | 'promoted' | 'demoted' | 'resynced' | 'forced' | 'link-lost' | 'attach-refused';
  readonly status: MetroStatus;
  readonly term: number;
  readonly detail?: string;
  readonly resync?: ResyncResult;
}

/** Options of {@link MirroredVolume.open}. */
export interface MirroredVolumeOptions {
  readonly pairId: string;
  readonly siteId: string;
  readonly peerSiteId: string;
  /** The local data device (a Volume, a raw file, ...). Both sides must be the same length. */
  readonly device: BlockDevice;
  /** The metadata device: state record and dirty bitmap (metadataBytesFor(volume, region) bytes). */
  readonly metaDevice: BlockDevice;
  readonly transport: Transport;
  /** Where this side accepts the peer ("host:port"). */
  readonly listenAddress: string;
  /** Where the peer accepts us. */
  readonly peerAddress: string;
  readonly witnessAddress: string;
  /** Transport to the witness. @defaultValue transport */
  readonly witnessTransport?: Transport;
  /** Pre-shared key of the pair and its witness (at least 16 bytes). */
  readonly psk: Uint8Array;
  readonly clock: Clock;
  /** Role on a fresh metadata device (exactly one side of a new pair says 'active'). @defaultValue 'standby' */
  readonly initialRole?: MetroRole;
  /** @defaultValue 'durable' */
  readonly mode?: MirrorMode;
  /** @defaultValue DEFAULT_REGION_BYTES (64 KiB) */
  readonly regionBytes?: number;
  /** @defaultValue DEFAULT_PEER_TIMEOUT_MS */
  readonly peerTimeoutMs?: number;
  /** @defaultValue DEFAULT_POLL_MS */
  readonly pollMs?: number;
  readonly onEvent?: (event: MetroEvent) => void;
}

/** One side of a Metro pair. Open with {@link MirroredVolume.open}. */
export class MirroredVolume implements AsyncDisposable {
  readonly byteLength: number;
  readonly dirty: DirtyRegions;
  readonly mode: MirrorMode;
  readonly #o: MirroredVolumeOptions;
  readonly #state: StateStore;
  readonly #witness: WitnessClient;
  readonly #peerTimeoutMs: number;
  readonly #pollMs: number;
  #listener: Listener | undefined;
  #status: MetroStatus = 'suspended';
  #link: MirrorLink | undefined;
  #inbound: Connection | undefined;
  #connecting = false;
  #leaseValidUntilMs = -Infinity;
  #gate: Promise<void> | undefined;
  #degrading: Promise<boolean> | undefined;
  readonly #inflight = new Set<Promise<unknown>>();
  #inflightBytes = 0;
  readonly #spaceWaiters: (() => void)[] = [];
  /** Region -> sequence number of its last mirrored write (cleared at a mirrored barrier). */
  readonly #alSeq = new Map<number, number>();
  #timer: TimerHandle | undefined;
  #ticking = false;
  #closed = false;
  /** A fresh standby lets the active side attach first (one peer timeout) before it asks for the lease. */
  #standbyAsksFromMs: number;

  private constructor(o: MirroredVolumeOptions, state: StateStore, dirty: DirtyRegions) {
    this.#o = o;
    this.#state = state;
    this.dirty = dirty;
    this.byteLength = o.device.byteLength;
    this.mode = o.mode ?? 'durable';
    this.#peerTimeoutMs = o.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS;
    this.#pollMs = o.pollMs ?? DEFAULT_POLL_MS;
    this.#witness = new WitnessClient({ transport: o.witnessTransport ?? o.transport, address: o.witnessAddress, siteId: o.siteId, psk: o.psk, clock: o.clock, requestTimeoutMs: Math.max(100, Math.min(1000, this.#pollMs * 4)) });
    this.#status = state.record.role === 'active' ? 'suspended' : 'standby';
    this.#standbyAsksFromMs = o.clock.now() + this.#peerTimeoutMs;
  }

  /**
   * Opens this side: reads its state and dirty bits, listens for the peer and starts the
   * lease and link loops.
   * @throws INVALID_ARGUMENT (options, a metadata device of another pair), ALREADY_EXISTS (listen address in use), CORRUPTION
   */
  static async open(options: MirroredVolumeOptions): Promise<MirroredVolume> {
    if (options.psk.length < 16) throw new DrkitError('INVALID_ARGUMENT', 'psk must be at least 16 bytes');
    if (options.peerTimeoutMs !== undefined) assertPositiveInteger(options.peerTimeoutMs, 'peerTimeoutMs');
    if (options.pollMs !== undefined) assertPositiveInteger(options.pollMs, 'pollMs');
    const dirty = await DirtyRegions.open({ device: options.metaDevice, volumeByteLength: options.device.byteLength, ...(options.regionBytes === undefined ? {} : { regionBytes: options.regionBytes }) });
    const state = await StateStore.open(options.metaDevice, { pairId: options.pairId, siteId: options.siteId, role: options.initialRole ?? 'standby', term: 0, forcedAtMs: undefined });
    const v = new MirroredVolume(options, state, dirty);
    v.#listener = await options.transport.listen(options.listenAddress, { onConnection: (c) => void serveMetroPeer(v.#peerHost(), c) });
    v.#schedule(0);
    return v;
  }

  /** What this side is doing now. */
  get status(): MetroStatus {
    return this.#status;
  }

  /** This side's role and lease term (generation). */
  get role(): MetroRole {
    return this.#state.record.role;
  }
  get term(): number {
    return this.#state.record.term;
  }

  /** When an operator forced this side (undefined when never). */
  get forcedAtMs(): number | undefined {
    return this.#state.record.forcedAtMs;
  }

  /** The address this side listens on. */
  get address(): string {
    return this.#listener?.address ?? this.#o.listenAddress;
  }

  /** Local read. @throws OUT_OF_RANGE, NOT_OPEN */
  async read(byteOffset: number, byteLength: number, options: IoOptions = {}): Promise<Uint8Array> {
    this.#checkOpen();
    assertRange(byteOffset, byteLength, this.byteLength, 'read');
    return this.#o.device.read(byteOffset, byteLength, options);
  }

  /**
   * Writes `data` at `byteOffset`; resolves once it is durable locally and at the peer
   * (mirrored), or locally with its regions marked dirty under a lease that outdated the
   * peer (degraded).
   * @throws SUSPENDED (standby, or neither peer nor witness), OUT_OF_RANGE, INVALID_ARGUMENT, NOT_OPEN, IO_ERROR
   */
  async write(byteOffset: number, data: Uint8Array): Promise<void> {
    this.#checkOpen();
    assertBytes(data, 'data');
    assertRange(byteOffset, data.length, this.byteLength, 'write');
    for (let at = 0; at < data.length; at += MAX_METRO_DATA_BYTES) {
      await this.#writeOne(byteOffset + at, data.subarray(at, Math.min(data.length, at + MAX_METRO_DATA_BYTES)));
    }
  }

  /**
   * Flush barrier: resolves once every write that resolved before the call is durable on
   * both sides (degraded: locally). In mirrored mode it also clears the dirty bits of
   * regions the barrier covers.
   * @throws SUSPENDED, NOT_OPEN, IO_ERROR
   */
  async flush(): Promise<void> {
    this.#checkOpen();
    for (;;) {
      while (this.#gate !== undefined) await this.#gate;
      if (this.#degrading !== undefined) await this.#degrading;
      this.#assertWritable();
      const link = this.#link;
      const local = this.#localFlush();
      if (this.#status !== 'mirrored' || link === undefined) {
        await local;
        return;
      }
      const barrier = link.flush();
      await local;
      try {
        await barrier.done;
      } catch {
        if (await this.#degrade(link)) continue;
        throw this.#suspended('the peer was lost during a flush and the witness gave no lease');
      }
      const clean = [...this.#alSeq].filter(([, seq]) => seq <= barrier.seq).map(([r]) => r);
      for (const r of clean) this.#alSeq.delete(r);
      if (!link.failed && this.#status === 'mirrored') await this.dirty.clear(clean.filter((r) => !this.#alSeq.has(r)));
      return;
    }
  }

  /**
   * Operator override: make this side writable without the witness (both sides suspended,
   * the other site known to be down). Recorded durably (`forcedAtMs`, a new term); the
   * operator owns the consequence if the other side is in fact writing.
   * @throws NOT_OPEN
   */
  async force(): Promise<void> {
    this.#checkOpen();
    const r = this.#state.record;
    await this.#state.save({ ...r, role: 'active', term: r.term + 1, forcedAtMs: this.#o.clock.now() });
    this.#leaseValidUntilMs = Infinity;
    this.#dropInbound();
    this.#setStatus(this.#link === undefined ? 'degraded' : this.#status, 'forced');
  }

  /**
   * Planned swap: hands the active role to the peer with no write loss. Waits for writes
   * in flight, flushes both sides, releases the lease at the witness with the peer in
   * sync and becomes standby; the peer takes the lease at its next poll and attaches.
   * @throws SUSPENDED unless this side is active and mirrored, TIMEOUT/CONNECTION_* from the witness
   */
  async swap(): Promise<void> {
    this.#checkOpen();
    if (this.#status !== 'mirrored') throw this.#suspended(`a planned swap needs a mirrored pair (this side is ${this.#status})`);
    await this.flush();
    let release!: () => void;
    this.#gate = new Promise<void>((r) => (release = r));
    try {
      await Promise.allSettled([...this.#inflight]);
      const link = this.#link;
      if (link === undefined) throw this.#suspended('the peer was lost before the swap');
      await this.#localFlush();
      await link.flush().done;
      const released = await this.#witness.request({ pairId: this.#o.pairId, siteId: this.#o.siteId, peerSiteId: this.#o.peerSiteId, peerInSync: true, release: true });
      if (released.reason !== 'released') throw this.#suspended(`the witness did not release the lease (${released.reason})`);
      await this.#state.save({ ...this.#state.record, role: 'standby' });
      this.#leaseValidUntilMs = -Infinity;
      // The peer takes the lease now; this side gives it one peer timeout before it would ask.
      this.#standbyAsksFromMs = this.#o.clock.now() + this.#peerTimeoutMs;
      this.#link = undefined;
      this.#setStatus('standby', 'planned swap');
      link.fail(new DrkitError('CLOSED', 'planned swap'));
    } finally {
      this.#gate = undefined;
      release();
    }
  }

  /** Stops the loops and closes connections (devices stay open: the caller owns them). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer?.cancel();
    this.#witness.close();
    this.#link?.fail(new DrkitError('CLOSED', 'the mirrored volume closed'));
    this.#dropInbound();
    await this.#listener?.close();
    this.#status = 'closed';
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- write path ----

  async #writeOne(byteOffset: number, data: Uint8Array): Promise<void> {
    for (;;) {
      while (this.#gate !== undefined) await this.#gate;
      if (this.#degrading !== undefined) await this.#degrading;
      this.#assertWritable();
      while (this.#inflightBytes + data.length > MAX_INFLIGHT_BYTES && this.#inflightBytes > 0) await new Promise<void>((r) => this.#spaceWaiters.push(r));
      if (this.#gate !== undefined) continue;
      this.#assertWritable();
      const op = this.#status === 'mirrored' && this.#link !== undefined ? this.#mirroredWrite(this.#link, byteOffset, data) : this.#degradedWrite(byteOffset, data);
      this.#inflight.add(op);
      this.#inflightBytes += data.length;
      try {
        const outcome = await op;
        if (outcome === 'done') return;
      } finally {
        this.#inflight.delete(op);
        this.#inflightBytes -= data.length;
        this.#spaceWaiters.splice(0).forEach((w) => w());
      }
    }
  }

  async #mirroredWrite(link: MirrorLink, byteOffset: number, data: Uint8Array): Promise<'done' | 'retry'> {
    const regions = this.dirty.regionsOf(byteOffset, data.length);
    await this.dirty.mark(regions);
    const sent = link.write(byteOffset, data);
    for (const r of regions) this.#alSeq.set(r, sent.seq);
    sent.acked.catch(() => undefined);
    await this.#o.device.write(byteOffset, data);
    await this.#localFlush();
    try {
      await sent.acked;
      return 'done';
    } catch {
      // The peer may or may not hold it; the region stays marked, so the resync settles it.
      for (const r of regions) this.#alSeq.delete(r);
      if (await this.#degrade(link)) return 'done';
      throw this.#suspended('the peer was lost and the witness gave no lease');
    }
  }

  async #degradedWrite(byteOffset: number, data: Uint8Array): Promise<'done' | 'retry'> {
    if (!this.#leaseValid()) throw this.#suspended('no valid lease and no peer');
    const regions = this.dirty.regionsOf(byteOffset, data.length);
    for (const r of regions) this.#alSeq.delete(r);
    await this.dirty.mark(regions);
    await this.#o.device.write(byteOffset, data);
    await this.#localFlush();
    return 'done';
  }

  /**
   * A local flush that starts now (so it covers every write completed before the call).
   * Calls overlap rather than queue behind one another: a write never waits for a flush
   * that started before it to end first (the device and the kernel merge concurrent syncs).
   */
  #localFlush(): Promise<void> {
    return this.#o.device.flush();
  }

  /**
   * The peer was lost under `link`: continue alone only if the witness records the peer as
   * outdated under our lease. Concurrent callers share one attempt.
   */
  #degrade(link: MirrorLink | undefined): Promise<boolean> {
    if (link !== undefined) {
      if (this.#link === link) this.#link = undefined;
      link.fail(new DrkitError('CONNECTION_LOST', 'a mirrored write failed'));
    }
    if (this.#status === 'degraded' && this.#leaseValid()) return Promise.resolve(true);
    this.#degrading ??= (async () => {
      try {
        if (this.#state.record.forcedAtMs !== undefined && this.#leaseValidUntilMs === Infinity) {
          this.#setStatus('degraded', 'forced side lost its peer');
          return true;
        }
        const grant = await this.#requestLease(false);
        if (grant?.granted === true) {
          // An attach that is resyncing (or done) meanwhile decides the status itself.
          if (this.#link === undefined && this.#status !== 'resyncing') this.#setStatus('degraded', 'peer lost; the witness outdated it');
          return true;
        }
        if (this.#status !== 'standby') this.#setStatus('suspended', grant === undefined ? 'peer and witness lost' : `witness: ${grant.reason}`);
        return false;
      } finally {
        this.#degrading = undefined;
      }
    })();
    return this.#degrading;
  }

  // ---- lease ----

  #leaseValid(): boolean {
    return this.#o.clock.now() < this.#leaseValidUntilMs;
  }

  /** One lease request; updates role/term on a grant, demotes when another site holds it. */
  async #requestLease(peerInSync: boolean): Promise<LeaseGrant | undefined> {
    const sentAtMs = this.#o.clock.now();
    let grant: LeaseGrant;
    try {
      grant = await this.#witness.request({ pairId: this.#o.pairId, siteId: this.#o.siteId, peerSiteId: this.#o.peerSiteId, peerInSync });
    } catch {
      return undefined;
    }
    if (this.#closed) return undefined;
    if (grant.granted) {
      const r = this.#state.record;
      if (r.role !== 'active' || r.term !== grant.term) {
        const promoted = r.role !== 'active';
        if (grant.term < r.term) return { ...grant, granted: false };
        await this.#state.save({ ...r, role: 'active', term: grant.term });
        if (promoted) {
          this.#dropInbound();
          this.#emit('promoted', `lease term ${grant.term}`);
        }
      }
      if (this.#leaseValidUntilMs !== Infinity) this.#leaseValidUntilMs = sentAtMs + grant.leaseMs;
    } else if (this.#state.record.role === 'active' && this.#leaseValidUntilMs !== Infinity && grant.holder !== undefined && grant.holder !== this.#o.siteId) {
      await this.#demote(`the witness leases the pair to ${grant.holder} (term ${grant.term})`);
    }
    return grant;
  }

  async #demote(why: string): Promise<void> {
    this.#leaseValidUntilMs = -Infinity;
    this.#link?.fail(new DrkitError('STALE_GENERATION', why));
    this.#link = undefined;
    if (this.#state.record.role !== 'standby') await this.#state.save({ ...this.#state.record, role: 'standby', forcedAtMs: undefined });
    this.#setStatus('standby', why);
    this.#emit('demoted', why);
  }

  // ---- background loop: renew, take over, attach ----

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    this.#timer = this.#o.clock.setTimer(delayMs, () => void this.#tick());
  }

  async #tick(): Promise<void> {
    if (this.#closed || this.#ticking) return;
    this.#ticking = true;
    try {
      if (this.#roleNow() === 'active') {
        if (this.#status === 'mirrored' || this.#status === 'degraded' || this.#status === 'resyncing' || this.#leaseValidUntilMs === Infinity) await this.#requestLease(this.#status === 'mirrored');
        if (this.#status === 'degraded' && !this.#leaseValid()) this.#setStatus('suspended', 'the lease expired without a peer');
        if (this.#roleNow() === 'active' && this.#link === undefined && !this.#connecting) void this.#attach();
        if (this.#roleNow() === 'active' && this.#status === 'suspended' && this.#link === undefined && !this.#connecting) await this.#degrade(undefined);
      } else if (this.#inbound === undefined && this.#o.clock.now() >= this.#standbyAsksFromMs) {
        const grant = await this.#requestLease(false);
        if (grant?.granted === true && this.#roleNow() === 'active') {
          this.#setStatus('degraded', 'took over: the active side is gone and its lease expired');
          void this.#attach();
        }
      }
    } catch {
      // A failed round changes nothing; the next one retries.
    } finally {
      this.#ticking = false;
      this.#schedule(this.#pollMs);
    }
  }

  /** Connects to the peer, attaches, resyncs and switches to mirrored. */
  async #attach(): Promise<void> {
    if (this.#connecting || this.#closed) return;
    this.#connecting = true;
    let connection: Connection | undefined;
    let release: (() => void) | undefined;
    try {
      connection = await this.#o.transport.connect(this.#o.peerAddress, { timeoutMs: this.#peerTimeoutMs });
      const session = await clientHandshake(connection, { siteId: this.#o.siteId, clock: this.#o.clock, psk: this.#o.psk, expectedPeerSiteId: this.#o.peerSiteId, idleTimeoutMs: this.#peerTimeoutMs });
      if (this.#state.record.role !== 'active' || this.#closed) throw new DrkitError('CLOSED', 'no longer active');
      // Writes wait from here until the resync is done; the ones in flight finish first.
      this.#gate = new Promise<void>((r) => (release = r));
      await Promise.allSettled([...this.#inflight]);
      const statusBefore = this.#status;
      this.#setStatus('resyncing', 'attaching to the peer');
      await writeJson(session.writer, 'METRO_ATTACH', { pairId: this.#o.pairId, term: this.#state.record.term, byteLength: this.byteLength, regionBytes: this.dirty.regionBytes, mode: this.mode });
      let attached;
      try {
        attached = jsonOf(await expectMetro(session.reader, 'METRO_ATTACHED'));
      } catch (err) {
        const e = toDrkitError(err, 'CONNECTION_LOST', 'attach failed');
        this.#emit('attach-refused', `${e.code}: ${e.message}`);
        if (e.code === 'STALE_GENERATION') await this.#demote(`the peer is at a newer term: ${e.message}`);
        else this.#setStatus(statusBefore, 'attach failed');
        throw e;
      }
      const all = attached.boolean('all');
      const peerRegions = attached.array('regions', 16_384, (v, path) => {
        if (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) >= this.dirty.regionCount) throw new DrkitError('PROTOCOL_ERROR', `${path}: not a region index`);
        return v as number;
      });
      const union = all ? Array.from({ length: this.dirty.regionCount }, (_, i) => i) : [...new Set([...this.dirty.list(), ...peerRegions])].sort((a, b) => a - b);
      const ownBefore = this.dirty.list();
      const result = await resyncRegions(session, { device: this.#o.device, regionBytes: this.dirty.regionBytes, regions: union });
      await this.dirty.clear(ownBefore);
      this.#alSeq.clear();
      const link = new MirrorLink(session, () => connection?.destroy(), this.#o.clock, this.#peerTimeoutMs, (err) => this.#linkLost(link, err));
      this.#link = link;
      this.#setStatus('mirrored', `resynced ${result.regionCount} regions`);
      this.#emit('resynced', undefined, result);
      void this.#requestLease(true);
    } catch {
      connection?.destroy();
    } finally {
      this.#connecting = false;
      this.#gate = undefined;
      release?.();
    }
  }

  #linkLost(link: MirrorLink, err: DrkitError): void {
    if (this.#link !== link) return;
    this.#link = undefined;
    this.#emit('link-lost', err.message);
    if (this.#status === 'mirrored') {
      // Not mirrored any more, not yet allowed alone: writes wait for the witness's answer.
      this.#setStatus('suspended', 'peer lost; asking the witness');
      void this.#degrade(link);
    }
  }

  // ---- standby side ----

  #peerHost(): PeerHost {
    return {
      pairId: this.#o.pairId,
      siteId: this.#o.siteId,
      peerSiteId: this.#o.peerSiteId,
      device: this.#o.device,
      dirty: this.dirty,
      clock: this.#o.clock,
      psk: this.#o.psk,
      peerTimeoutMs: this.#peerTimeoutMs,
      acceptAttach: async (term, connection) => {
        const r = this.#state.record;
        if (this.#closed) return { refused: 'BUSY', term: r.term };
        if (term < r.term) return { refused: 'STALE_GENERATION', term: r.term };
        if (term === r.term && r.role === 'active') return { refused: r.forcedAtMs !== undefined ? 'DIVERGED' : 'STALE_GENERATION', term: r.term };
        if (this.#inbound !== undefined) this.#inbound.destroy();
        if (r.role === 'active') await this.#demote(`the peer attached at the newer term ${term}`);
        if (r.term !== term || this.#state.record.role !== 'standby') await this.#state.save({ ...this.#state.record, role: 'standby', term });
        this.#inbound = connection;
        return { term };
      },
      detached: (connection) => {
        if (this.#inbound !== connection) return;
        this.#inbound = undefined;
        // A standby that lost its active side asks for the lease at once (then every poll).
        this.#timer?.cancel();
        this.#schedule(0);
      },
      resynced: () => undefined,
    };
  }

  #dropInbound(): void {
    this.#inbound?.destroy();
    this.#inbound = undefined;
  }

  // ---- helpers ----

  #assertWritable(): void {
    this.#checkOpen();
    if (this.#state.record.role !== 'active') throw this.#suspended('this side is the standby');
    if (this.#status === 'suspended') throw this.#suspended('no peer and no witness lease');
  }

  #suspended(why: string): DrkitError {
    return new DrkitError('SUSPENDED', `${this.#o.pairId}@${this.#o.siteId}: ${why}`, { data: { pairId: this.#o.pairId, siteId: this.#o.siteId, status: this.#status, term: this.term } });
  }

  /** The durable role (a method, so that checks after an await are not narrowed away). */
  #roleNow(): MetroRole {
    return this.#state.record.role;
  }

  #checkOpen(): void {
    if (this.#closed) throw new DrkitError('NOT_OPEN', 'the mirrored volume is closed');
  }

  #setStatus(status: MetroStatus, detail: string): void {
    if (this.#status === status || this.#status === 'closed') return;
    this.#status = status;
    this.#emit('status', detail);
  }

  #emit(kind: MetroEvent['kind'], detail?: string, resync?: ResyncResult): void {
    this.#o.onEvent?.({ kind, status: this.#status, term: this.term, ...(detail === undefined ? {} : { detail }), ...(resync === undefined ? {} : { resync }) });
  }
}
