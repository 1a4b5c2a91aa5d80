/**
 * One authenticated protocol connection, usable in both roles at once:
 * - as a client of the peer's receiver: {@link Peer.port} is a ReplicationPort whose
 *   calls are requests matched to responses by id (many may be in flight: the sender
 *   pipelines);
 * - as a server for the peer: requests are handed, one at a time and in arrival order,
 *   to this site's ReceiverState (so a slow receiver back-pressures the sender through
 *   the transport), and PULL_REQ starts a sender back over the same connection.
 *
 * Errors are fatal to the connection: the side that fails sends ERROR (code + message)
 * and closes; every call in flight on either side rejects with that coded error.
 */
import { DrkitError } from '../../core/errors.js';
import type { Connection } from '../../adapters/transport.js';
import type { BeginRequest as PortBeginRequest, HeldSnapshot, ReplicationPort, WireBlock, WireExtent } from '../replication-port.js';
import type { ReceiverState } from '../receiver-state.js';
import { closeWithError } from './close-with-error.js';
import type { HandshakeResult } from './handshake.js';
import { decodeMessage, errorFromPeer, writeMessage, type Message } from './messages.js';
import type { Clock } from '../../adapters/clock.js';
import { MAX_LIST_SNAPSHOTS } from './control-messages.js';
import type { LwsRecord } from './lws-messages.js';
import type { RemoteDemotion, RemoteDemotionResult, RemoteLineageStatus, RemotePromotion, RemotePromotionResult } from '../remote-control.js';

/** What serves the peer's replication requests: a site's ReceiverState, or a device restore (device-receiver.ts). */
export type PeerReceiver = Pick<ReceiverState, 'list' | 'begin' | 'have' | 'extents' | 'blocks' | 'commit' | 'abort' | 'prune' | 'release'> & {
  /**
   * True when nothing the receiver keeps after `extents()` resolves is a view into the
   * extents it was given: the Peer then reuses the EXTENTS frame's buffer for a later frame
   * (FrameReader.recycle). A receiver that keeps views must leave it unset.
   */
  readonly keepsNoFrameViews?: boolean;
};

/** Starts a sender for a PULL_REQ (supplied by the Site). */
export type PullHandler = (peer: Peer, snapshotId: string, baseSnapshotId: string | undefined) => Promise<void>;

/** Answers the recovery requests of the peer (supplied by the Site; see remote-control.ts). */
export interface ControlHandler {
  status(query: { lineage?: string; snapshotId?: string }): Promise<Omit<RemoteLineageStatus, 'siteId'>>;
  promote(peerSiteId: string, members: readonly RemotePromotion[]): Promise<RemotePromotionResult[]>;
  demote(peerSiteId: string, members: readonly RemoteDemotion[]): Promise<RemoteDemotionResult[]>;
}

/** Receives NearSync sessions (supplied by the Site; see lws-journal.ts). */
export interface LwsHandler {
  open(peerSiteId: string, sessionId: string, baseMarkerSeq: number, members: readonly { volumeId: string; seedSnapshotId: string }[], sourceLogId: string): Promise<number>;
  append(peerSiteId: string, sessionId: string, records: readonly LwsRecord[]): Promise<number>;
  /** Which of the fingerprints this side holds (advisory: a later batch's references are checked again). */
  have(peerSiteId: string, sessionId: string, fingerprints: readonly Uint8Array[]): Promise<boolean[]>;
}

interface Pending {
  resolve(message: Message): void;
  reject(err: unknown): void;
}

/**
 * LWS batches a receiver stores or acknowledges at once before it stops reading: twice the
 * sender's window (8), so a well-behaved sender never waits on it and a flood cannot queue
 * unbounded memory.
 */
const MAX_LWS_BATCHES_IN_FLIGHT = 16;

/** An authenticated connection speaking the drkit protocol. */
export class Peer {
  readonly peerSiteId: string;
  readonly #connection: Connection;
  readonly #handshake: HandshakeResult;
  readonly #receiver: PeerReceiver | undefined;
  readonly #onPull: PullHandler | undefined;
  readonly #control: ControlHandler | undefined;
  readonly #lws: LwsHandler | undefined;
  /** The ack of the newest LWS batch received: acks are written in arrival order. */
  #lwsAcks: Promise<void> = Promise.resolve();
  #lwsBatchesInFlight = 0;
  readonly #clock: Clock;
  readonly #pending = new Map<string, Pending>();
  #nextId = 1;
  #failure: DrkitError | undefined;
  #closed = false;
  readonly #done: Promise<void>;
  #commitListeners: ((ids: string[]) => void)[] = [];

  constructor(connection: Connection, handshake: HandshakeResult, options: { receiver?: PeerReceiver; onPull?: PullHandler; control?: ControlHandler; lws?: LwsHandler; clock: Clock }) {
    this.#connection = connection;
    this.#handshake = handshake;
    this.peerSiteId = handshake.peerSiteId;
    this.#receiver = options.receiver;
    this.#onPull = options.onPull;
    this.#control = options.control;
    this.#lws = options.lws;
    this.#clock = options.clock;
    // The connection is the owner of the sessions it begins at our receiver; when it ends,
    // another sender may take them over (resume).
    this.#done = this.#readLoop().finally(() => this.#receiver?.release(this));
  }

  /** Resolves when the connection ends (cleanly or not). */
  get done(): Promise<void> {
    return this.#done;
  }

  /** Bytes received on this connection so far, frames included (progress's wire bytes). */
  get wireBytesRead(): number {
    return this.#handshake.reader.bytesRead;
  }

  /** Bytes of frames sent on this connection so far. */
  get wireBytesWritten(): number {
    return this.#handshake.writer.bytesWritten;
  }

  /** Calls `listener` with the snapshot ids of every commit this side serves. */
  onCommit(listener: (ids: string[]) => void): void {
    this.#commitListeners.push(listener);
  }

  /** The peer's receiver, as a ReplicationPort. */
  port(): ReplicationPort {
    return {
      // EXTENTS is encoded into its frame before the request is answered (FrameWriter.write is synchronous).
      releasesExtentData: true,
      list: async (volumeKey) => {
        const out: HeldSnapshot[] = [];
        let cursor: string | undefined;
        do {
          const res = await this.#request('LIST_RES', (requestId) => ({ type: 'LIST_REQ', requestId, volumeKey, ...(cursor === undefined ? {} : { cursor }) }));
          out.push(...res.snapshots);
          cursor = res.nextCursor;
        } while (cursor !== undefined);
        return out;
      },
      begin: async (r) => {
        const res = await this.#request('BEGIN_RES', (requestId) => ({ type: 'BEGIN_REQ', requestId, ...r }));
        return { resumeBlock: res.resumeBlock, baseFound: res.baseFound, ...(res.committedSnapshotId === undefined ? {} : { committedSnapshotId: res.committedSnapshotId }) };
      },
      have: async (fingerprints) => {
        const res = await this.#request('HAVE_RES', (requestId) => ({ type: 'HAVE_REQ', requestId, fingerprints }));
        return [...res.have];
      },
      extents: async (extents) => {
        await this.#request('EXTENTS_ACK', (batchId) => ({ type: 'EXTENTS', batchId, extents }));
      },
      blocks: async (sessionId, cursorAfter, blocks) => {
        const res = await this.#request('BLOCKS_ACK', (batchId) => ({ type: 'BLOCKS', batchId, sessionId, cursorAfter, blocks }));
        return res.cursor;
      },
      commit: async (sessionIds) => {
        const res = await this.#request('COMMIT_RES', (requestId) => ({ type: 'COMMIT_REQ', requestId, sessionIds }));
        return [...res.snapshotIds];
      },
    };
  }

  /** Asks the peer to send `snapshotId` back over this connection; resolves with the ids this side committed. */
  pull(snapshotId: string, baseSnapshotId?: string): Promise<string[]> {
    return new Promise<string[]>((resolve, reject) => {
      this.#commitListeners.push(resolve);
      void this.#done.then(() => reject(this.#failure ?? new DrkitError('CONNECTION_LOST', 'connection ended before the pulled snapshot was committed')));
      writeMessage(this.#handshake.writer, { type: 'PULL_REQ', requestId: this.#nextId++, snapshotId, ...(baseSnapshotId === undefined ? {} : { baseSnapshotId }) }).catch(reject);
    });
  }

  /** Asks the peer to delete its replicas of our snapshots (remote retention); resolves with the ids it deleted. */
  async prune(snapshots: readonly { originSiteId: string; originSnapshotId: string }[]): Promise<string[]> {
    const res = await this.#request('PRUNE_RES', (requestId) => ({ type: 'PRUNE_REQ', requestId, snapshots }));
    return [...res.deletedSnapshotIds];
  }

  /**
   * The peer's status of a lineage (named, or as the lineage of one of its snapshots); `siteId` is the authenticated peer.
   * @throws PROTOCOL_ERROR when the answer is about another lineage (or, asked by snapshot, lacks its generation), and the peer's codes
   */
  async status(query: { lineage: string } | { snapshotId: string }): Promise<RemoteLineageStatus> {
    const res = await this.#request('STATUS_RES', (requestId) => ({ type: 'STATUS_REQ', requestId, ...query }));
    if (('lineage' in query && res.lineage !== query.lineage) || ('snapshotId' in query && res.snapshotGeneration === undefined)) {
      const error = new DrkitError('PROTOCOL_ERROR', `site ${this.peerSiteId} answered a status request about something else`, { data: { lineage: res.lineage } });
      await this.fail(error);
      throw error;
    }
    return {
      siteId: this.peerSiteId,
      lineage: res.lineage,
      generation: res.generation,
      writableVolumeId: res.writableVolumeId,
      ...(res.snapshotGeneration === undefined ? {} : { snapshotGeneration: res.snapshotGeneration }),
    };
  }

  /**
   * Asks the peer to promote these lineages, all or none; resolves with what each became.
   * The answer must name every member, in order, at a generation above the one it handed over.
   * @throws PROTOCOL_ERROR for any other answer, and the peer's codes
   */
  async promote(members: readonly RemotePromotion[]): Promise<RemotePromotionResult[]> {
    const res = await this.#request('PROMOTE_RES', (requestId) => ({ type: 'PROMOTE_REQ', requestId, members }));
    const consistent = res.members.length === members.length && res.members.every((m, i) => m.lineage === members[i]!.lineage && m.generation > members[i]!.sourceGeneration);
    if (!consistent) {
      const error = new DrkitError('PROTOCOL_ERROR', `site ${this.peerSiteId} answered a promotion of ${members.length} lineage(s) with another list`, { data: { requested: members.map((m) => m.lineage), answered: res.members.map((m) => m.lineage) } });
      await this.fail(error);
      throw error;
    }
    return [...res.members];
  }

  /**
   * Asks the peer to give back lineages it was promoted to from our final snapshots, all or none.
   * The answer must name every member, in order.
   * @throws PROTOCOL_ERROR for any other answer, and the peer's codes
   */
  async demote(members: readonly RemoteDemotion[]): Promise<RemoteDemotionResult[]> {
    const res = await this.#request('DEMOTE_RES', (requestId) => ({ type: 'DEMOTE_REQ', requestId, members }));
    const consistent = res.members.length === members.length && res.members.every((m, i) => m.lineage === members[i]!.lineage);
    if (!consistent) {
      const error = new DrkitError('PROTOCOL_ERROR', `site ${this.peerSiteId} answered a demotion of ${members.length} lineage(s) with another list`, { data: { requested: members.map((m) => m.lineage), answered: res.members.map((m) => m.lineage) } });
      await this.fail(error);
      throw error;
    }
    return [...res.members];
  }

  /** Closes the connection cleanly. */
  /** Opens or resumes a NearSync session at the peer; resolves to its durable sequence number. */
  async lwsOpen(sessionId: string, baseMarkerSeq: number, members: readonly { volumeId: string; seedSnapshotId: string }[], sourceLogId: string): Promise<number> {
    const res = await this.#request('LWS_OPEN_RES', (requestId) => ({ type: 'LWS_OPEN_REQ', requestId, sessionId, baseMarkerSeq, members, sourceLogId }));
    return res.durableSeq;
  }

  /** Asks which of the fingerprints the peer holds (before a batch's whole-block records, many may be in flight). */
  async lwsHave(sessionId: string, fingerprints: readonly Uint8Array[]): Promise<readonly boolean[]> {
    const res = await this.#request('LWS_HAVE_RES', (requestId) => ({ type: 'LWS_HAVE_REQ', requestId, sessionId, fingerprints }));
    if (res.have.length !== fingerprints.length) {
      const error = new DrkitError('PROTOCOL_ERROR', `site ${this.peerSiteId} answered ${fingerprints.length} fingerprints with ${res.have.length}`);
      await this.fail(error);
      throw error;
    }
    return res.have;
  }

  /** Sends one batch of LWS records; resolves when the peer made them durable (many may be in flight). */
  async lwsBatch(sessionId: string, records: readonly LwsRecord[]): Promise<number> {
    const res = await this.#request('LWS_BATCH_ACK', (batchId) => ({ type: 'LWS_BATCH', batchId, sessionId, records }));
    return res.durableSeq;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#connection.close();
    await this.#done.catch(() => undefined);
  }

  /** Fails the connection with `err`, telling the peer. */
  async fail(err: unknown): Promise<void> {
    this.#setFailure(err);
    await closeWithError(this.#connection, this.#handshake.writer, err, { clock: this.#clock }).catch(() => undefined);
  }

  #setFailure(err: unknown): void {
    this.#failure ??= err instanceof DrkitError ? err : new DrkitError('CONNECTION_LOST', 'replication connection failed', { cause: err });
    for (const p of this.#pending.values()) p.reject(this.#failure);
    this.#pending.clear();
  }

  #request<T extends Message['type']>(responseType: T, build: (id: number) => Message): Promise<Extract<Message, { type: T }>> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    const key = `${responseType}:${id}`;
    const promise = new Promise<Message>((resolve, reject) => this.#pending.set(key, { resolve, reject }));
    writeMessage(this.#handshake.writer, build(id)).catch((err: unknown) => {
      this.#setFailure(err);
    });
    return promise as Promise<Extract<Message, { type: T }>>;
  }

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        const reader = this.#handshake.reader;
        const frame = await reader.read();
        if (frame === undefined) break;
        const message = decodeMessage(frame);
        if (message.type === 'ERROR') throw errorFromPeer(message);
        const responseKey = responseKeyOf(message);
        if (responseKey !== undefined) {
          const pending = this.#pending.get(responseKey);
          if (pending === undefined) throw new DrkitError('PROTOCOL_ERROR', `unsolicited ${message.type}`, { data: { type: message.type } });
          this.#pending.delete(responseKey);
          pending.resolve(message);
          continue;
        }
        await this.#serve(message);
        // Served (awaited) and answered: an EXTENTS frame is dead unless the receiver kept views.
        if (message.type === 'EXTENTS' && this.#receiver?.keepsNoFrameViews === true) reader.recycle(frame);
      }
      this.#setFailure(new DrkitError('CONNECTION_LOST', 'peer closed the connection'));
    } catch (err) {
      if (!this.#closed) await this.fail(err);
      else this.#setFailure(err);
    }
  }

  /** Handles one request from the peer (this side is its receiver). */
  async #serve(message: Message): Promise<void> {
    if (message.type === 'PULL_REQ') {
      if (this.#onPull === undefined) throw new DrkitError('NOT_SUPPORTED', 'this side does not serve pulls');
      // Runs beside the read loop: the sender's responses arrive through it.
      this.#onPull(this, message.snapshotId, message.baseSnapshotId).catch((err: unknown) => this.fail(err));
      return;
    }
    if (message.type === 'STATUS_REQ' || message.type === 'PROMOTE_REQ' || message.type === 'DEMOTE_REQ') {
      const control = this.#control;
      if (control === undefined) throw new DrkitError('NOT_SUPPORTED', `this side does not answer ${message.type}`);
      if (message.type === 'STATUS_REQ') {
        const { lineage, snapshotId } = message;
        const status = await control.status({ ...(lineage === undefined ? {} : { lineage }), ...(snapshotId === undefined ? {} : { snapshotId }) });
        await writeMessage(this.#handshake.writer, {
          type: 'STATUS_RES',
          requestId: message.requestId,
          lineage: status.lineage,
          generation: status.generation,
          ...(status.writableVolumeId === undefined ? {} : { writableVolumeId: status.writableVolumeId }),
          ...(status.snapshotGeneration === undefined ? {} : { snapshotGeneration: status.snapshotGeneration }),
        });
      } else if (message.type === 'PROMOTE_REQ') {
        const members = await control.promote(this.peerSiteId, message.members);
        await writeMessage(this.#handshake.writer, { type: 'PROMOTE_RES', requestId: message.requestId, members });
      } else {
        const members = await control.demote(this.peerSiteId, message.members);
        await writeMessage(this.#handshake.writer, { type: 'DEMOTE_RES', requestId: message.requestId, members });
      }
      return;
    }
    if (message.type === 'LWS_OPEN_REQ' || message.type === 'LWS_BATCH' || message.type === 'LWS_HAVE_REQ') {
      const lws = this.#lws;
      if (lws === undefined) throw new DrkitError('NOT_SUPPORTED', `this side does not receive NearSync (${message.type})`);
      if (message.type === 'LWS_HAVE_REQ') {
        const have = await lws.have(this.peerSiteId, message.sessionId, message.fingerprints);
        await writeMessage(this.#handshake.writer, { type: 'LWS_HAVE_RES', requestId: message.requestId, have });
      } else if (message.type === 'LWS_OPEN_REQ') {
        const durableSeq = await lws.open(this.peerSiteId, message.sessionId, message.baseMarkerSeq, message.members, message.sourceLogId);
        await writeMessage(this.#handshake.writer, { type: 'LWS_OPEN_RES', requestId: message.requestId, durableSeq });
      } else {
        // Not awaited here: the journal stores the batches that arrive during a sync together
        // (group commit); acks still leave in arrival order.
        if (this.#lwsBatchesInFlight >= MAX_LWS_BATCHES_IN_FLIGHT) await this.#lwsAcks.catch(() => undefined);
        const stored = lws.append(this.peerSiteId, message.sessionId, message.records);
        stored.catch(() => undefined);
        const previous = this.#lwsAcks;
        const batchId = message.batchId;
        this.#lwsBatchesInFlight++;
        this.#lwsAcks = (async () => {
          try {
            await previous;
            const durableSeq = await stored;
            await writeMessage(this.#handshake.writer, { type: 'LWS_BATCH_ACK', batchId, durableSeq });
          } finally {
            this.#lwsBatchesInFlight--;
          }
        })();
        this.#lwsAcks.catch((err: unknown) => {
          if (this.#failure === undefined) void this.fail(err);
        });
      }
      return;
    }
    const receiver = this.#receiver;
    if (receiver === undefined) throw new DrkitError('PROTOCOL_ERROR', `unexpected ${message.type}`, { data: { type: message.type } });
    const w = this.#handshake.writer;
    switch (message.type) {
      case 'LIST_REQ': {
        const all = await receiver.list(message.volumeKey);
        const from = message.cursor === undefined ? 0 : Number(message.cursor);
        if (!Number.isSafeInteger(from) || from < 0) throw new DrkitError('PROTOCOL_ERROR', 'bad list cursor');
        const page = all.slice(from, from + MAX_LIST_SNAPSHOTS);
        const next = from + page.length < all.length ? String(from + page.length) : undefined;
        await writeMessage(w, { type: 'LIST_RES', requestId: message.requestId, snapshots: page, ...(next === undefined ? {} : { nextCursor: next }) });
        return;
      }
      case 'BEGIN_REQ': {
        const { type: _t, requestId, ...request } = message;
        const res = await receiver.begin(request as PortBeginRequest, this);
        await writeMessage(w, { type: 'BEGIN_RES', requestId, ...res });
        return;
      }
      case 'HAVE_REQ':
        await writeMessage(w, { type: 'HAVE_RES', requestId: message.requestId, have: await receiver.have(message.fingerprints) });
        return;
      case 'EXTENTS':
        await receiver.extents(message.extents as WireExtent[]);
        await writeMessage(w, { type: 'EXTENTS_ACK', batchId: message.batchId });
        return;
      case 'BLOCKS': {
        const cursor = await receiver.blocks(message.sessionId, message.cursorAfter, message.blocks as WireBlock[], this);
        await writeMessage(w, { type: 'BLOCKS_ACK', batchId: message.batchId, cursor });
        return;
      }
      case 'COMMIT_REQ': {
        const ids = await receiver.commit(message.sessionIds, this);
        await writeMessage(w, { type: 'COMMIT_RES', requestId: message.requestId, snapshotIds: ids });
        for (const l of this.#commitListeners) l(ids);
        return;
      }
      case 'ABORT':
        await receiver.abort(message.sessionId, this);
        return;
      case 'PRUNE_REQ': {
        const deleted = await receiver.prune(this.peerSiteId, message.snapshots);
        await writeMessage(w, { type: 'PRUNE_RES', requestId: message.requestId, deletedSnapshotIds: deleted });
        return;
      }
      default:
        throw new DrkitError('PROTOCOL_ERROR', `unexpected ${message.type}`, { data: { type: message.type } });
    }
  }
}

/** The pending-map key a response answers, or undefined for requests. */
function responseKeyOf(m: Message): string | undefined {
  switch (m.type) {
    case 'LIST_RES':
    case 'BEGIN_RES':
    case 'HAVE_RES':
    case 'COMMIT_RES':
    case 'PRUNE_RES':
    case 'STATUS_RES':
    case 'PROMOTE_RES':
    case 'DEMOTE_RES':
    case 'LWS_OPEN_RES':
    case 'LWS_HAVE_RES':
      return `${m.type}:${m.requestId}`;
    case 'LWS_BATCH_ACK':
    case 'EXTENTS_ACK':
    case 'BLOCKS_ACK':
      return `${m.type}:${m.batchId}`;
    default:
      return undefined;
  }
}
