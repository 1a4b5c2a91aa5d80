/**
 * The standby side of a Metro connection: it accepts an attach from the active side (only
 * at a lease term no older than its own), takes a delta resync, then applies mirrored
 * writes and flush barriers to its local device strictly in sequence order.
 *
 * Durability promise: in 'durable' mode (DRBD protocol C) a write is acknowledged only
 * after a device flush that started once it was applied (a batch shares one flush, and a
 * batch applied while earlier flushes run starts its own, up to MAX_FLUSHES_IN_FLIGHT); in
 * 'received' mode (protocol B) it is acknowledged on receipt, and a METRO_FLUSH barrier is
 * echoed only once everything before it is durable. Resync regions are written only
 * after their SHA-256 matches the sender's, and the standby's own dirty bits are cleared
 * only after the resync's data was flushed.
 * Trust-boundary promise: sequence numbers must be consecutive, offsets inside the
 * volume, queued bytes within {@link MAX_PEER_QUEUE_BYTES}; anything else closes the
 * connection with PROTOCOL_ERROR before it touches the device.
 */
import type { BlockDevice } from '../adapters/block-device.js';
import type { Clock } from '../adapters/clock.js';
import type { Connection } from '../adapters/transport.js';
import { equalBytes } from '../core/bytes.js';
import { DrkitError, toDrkitError } from '../core/errors.js';
import { closeWithError } from '../replication/internal/close-with-error.js';
import { serverHandshake, type HandshakeResult } from '../replication/internal/handshake.js';
import type { DirtyRegions } from './dirty-regions.js';
import { decodeRegion, decodeSeq, decodeWrite, expectMetro, jsonOf, readMetro, writeJson, writeRefusal, writeRegionFrame, writeSeqFrame, type MetroFrame } from './internal/metro-messages.js';
import { regionFingerprint } from './resync.js';

/** Most bytes of received, not yet applied writes a standby queues: the active never has more in flight (MAX_INFLIGHT_BYTES). */
export const MAX_PEER_QUEUE_BYTES = 64 * 1024 * 1024;

/** Largest list of dirty regions a standby reports in METRO_ATTACHED; past it, it asks for a full resync. */
export const MAX_REPORTED_REGIONS = 16_384;

/** Device flushes a standby runs at once to acknowledge mirrored writes (each covers the writes applied before it started). */
export const MAX_FLUSHES_IN_FLIGHT = 4;

/** Acknowledgement semantics of a mirrored write. */
export type MirrorMode = 'durable' | 'received';

/** What the standby side needs from its volume. */
export interface PeerHost {
  readonly pairId: string;
  readonly siteId: string;
  readonly peerSiteId: string;
  readonly device: BlockDevice;
  readonly dirty: DirtyRegions;
  readonly clock: Clock;
  readonly psk: Uint8Array;
  readonly peerTimeoutMs: number;
  /** Accepts an attach at `term` (recording it durably, demoting if needed) or names the refusal. */
  acceptAttach(term: number, connection: Connection): Promise<{ readonly refused?: 'STALE_GENERATION' | 'DIVERGED' | 'BUSY'; readonly term: number }>;
  /** The attached session ended (any reason). */
  detached(connection: Connection): void;
  /** Called after a resync completed at the standby. */
  resynced(regionCount: number): void;
}

/** Serves one inbound connection until it ends. Never throws. */
export async function serveMetroPeer(host: PeerHost, connection: Connection): Promise<void> {
  let session: HandshakeResult | undefined;
  let attached = false;
  try {
    session = await serverHandshake(connection, {
      siteId: host.siteId,
      clock: host.clock,
      pskFor: (id) => (id === host.peerSiteId ? host.psk : undefined),
      idleTimeoutMs: host.peerTimeoutMs,
    });
    const f = jsonOf(await expectMetro(session.reader, 'METRO_ATTACH'));
    const pairId = f.id('pairId');
    const term = f.integer('term', 0, Number.MAX_SAFE_INTEGER);
    const byteLength = f.integer('byteLength', 0, Number.MAX_SAFE_INTEGER);
    const regionBytes = f.integer('regionBytes', 1, Number.MAX_SAFE_INTEGER);
    const mode = f.oneOf('mode', ['durable', 'received'] as const);
    if (pairId !== host.pairId || byteLength !== host.device.byteLength || regionBytes !== host.dirty.regionBytes) {
      throw new DrkitError('INVALID_ARGUMENT', `attach for pair ${pairId} (${byteLength} bytes, ${regionBytes}-byte regions) does not match ${host.pairId} (${host.device.byteLength}, ${host.dirty.regionBytes})`);
    }
    const verdict = await host.acceptAttach(term, connection);
    if (verdict.refused !== undefined) {
      await writeRefusal(session.writer, verdict.refused, `attach at term ${term} refused: this side is at term ${verdict.term}`, verdict.term);
      await connection.close();
      return;
    }
    attached = true;
    const own = host.dirty.list();
    await writeJson(session.writer, 'METRO_ATTACHED', { term: verdict.term, all: own.length > MAX_REPORTED_REGIONS, regions: own.length > MAX_REPORTED_REGIONS ? [] : own });
    await receiveResync(host, session);
    await applyMirror(host, session, mode);
  } catch (err) {
    await closeWithError(connection, session?.writer, toDrkitError(err, 'CONNECTION_LOST', 'Metro peer connection failed'), { clock: host.clock });
  } finally {
    if (attached) host.detached(connection);
  }
}

async function receiveResync(host: PeerHost, session: HandshakeResult): Promise<void> {
  const { device, dirty } = host;
  for (;;) {
    const frame = await readMetro(session.reader);
    if (frame === undefined) throw new DrkitError('CONNECTION_LOST', 'the active side closed during the resync');
    if (frame.name === 'METRO_RESYNC_END') break;
    if (frame.name !== 'METRO_REGION') throw new DrkitError('PROTOCOL_ERROR', `unexpected ${frame.name} during a resync`);
    const { regionIndex, fingerprint, data } = decodeRegion(frame);
    const expectedBytes = Math.min(dirty.regionBytes, device.byteLength - regionIndex * dirty.regionBytes);
    if (regionIndex >= dirty.regionCount || data.length !== expectedBytes) throw new DrkitError('PROTOCOL_ERROR', `region ${regionIndex} of ${data.length} bytes does not fit the volume`);
    // The fingerprint check: bytes altered on the way (or by a bad sender) never reach the device.
    if (!equalBytes(regionFingerprint(data), fingerprint)) throw new DrkitError('CORRUPTION', `region ${regionIndex} does not match its fingerprint`, { data: { regionIndex } });
    await device.write(regionIndex * dirty.regionBytes, data);
    const readBack = await device.read(regionIndex * dirty.regionBytes, data.length);
    await writeRegionFrame(session.writer, 'METRO_REGION_ACK', regionIndex, regionFingerprint(readBack));
  }
  await device.flush();
  const count = dirty.count;
  await dirty.clear(dirty.list());
  await writeJson(session.writer, 'METRO_IN_SYNC', {});
  host.resynced(count);
}

async function applyMirror(host: PeerHost, session: HandshakeResult, mode: MirrorMode): Promise<void> {
  const { device } = host;
  const queue: MetroFrame[] = [];
  let queuedBytes = 0;
  let expectedSeq = 1;
  let wake: (() => void) | undefined;
  let ended: DrkitError | undefined;
  const reading = (async () => {
    try {
      for (;;) {
        const frame = await readMetro(session.reader);
        if (frame === undefined) throw new DrkitError('CONNECTION_LOST', 'the active side closed the connection');
        if (frame.name === 'METRO_PING') {
          await writeSeqFrame(session.writer, 'METRO_PING', 0);
          continue;
        }
        if (frame.name !== 'METRO_WRITE' && frame.name !== 'METRO_FLUSH') throw new DrkitError('PROTOCOL_ERROR', `unexpected ${frame.name} on a mirrored link`);
        const seq = frame.name === 'METRO_WRITE' ? decodeWrite(frame).seq : decodeSeq(frame);
        if (seq !== expectedSeq) throw new DrkitError('PROTOCOL_ERROR', `mirrored frame ${seq} arrived where ${expectedSeq} was due`);
        expectedSeq++;
        queuedBytes += frame.payload.length;
        if (queuedBytes > MAX_PEER_QUEUE_BYTES) throw new DrkitError('PROTOCOL_ERROR', `more than ${MAX_PEER_QUEUE_BYTES} bytes of writes queued`);
        if (mode === 'received' && frame.name === 'METRO_WRITE') await writeSeqFrame(session.writer, 'METRO_ACK', seq);
        queue.push(frame);
        wake?.();
      }
    } catch (err) {
      ended = toDrkitError(err, 'CONNECTION_LOST', 'mirrored link failed');
      wake?.();
    }
  })();
  // Durable acks: a flush starts as soon as a batch is applied, without waiting for the one
  // in flight (at most MAX_FLUSHES_IN_FLIGHT), so writes keep being applied while the disk
  // syncs. An ack is cumulative and names only writes applied before its flush started,
  // and acks leave in increasing order.
  const flushes = new Set<Promise<void>>();
  let flushFailure: unknown;
  let acked = 0;
  let applied = 0;
  const ackUpTo = async (seq: number): Promise<void> => {
    if (seq <= acked) return;
    acked = seq;
    await writeSeqFrame(session.writer, 'METRO_ACK', seq);
  };
  const commit = (seq: number): void => {
    const p: Promise<void> = device
      .flush()
      .then(() => ackUpTo(seq))
      .catch((err: unknown) => {
        flushFailure ??= err;
        wake?.();
      })
      .finally(() => flushes.delete(p));
    flushes.add(p);
  };
  for (;;) {
    if (flushFailure !== undefined) throw flushFailure;
    if (queue.length === 0) {
      if (ended !== undefined) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      continue;
    }
    let lastWrite = 0;
    while (queue.length > 0) {
      const frame = queue.shift()!;
      queuedBytes -= frame.payload.length;
      if (frame.name === 'METRO_WRITE') {
        const w = decodeWrite(frame);
        if (w.byteOffset + w.data.length > device.byteLength) throw new DrkitError('PROTOCOL_ERROR', `mirrored write at ${w.byteOffset} of ${w.data.length} bytes is outside the volume`);
        await device.write(w.byteOffset, w.data);
        lastWrite = w.seq;
        applied = w.seq;
      } else {
        // A barrier: one flush that starts after every write before it was applied.
        await device.flush();
        if (mode === 'durable') await ackUpTo(applied);
        lastWrite = 0;
        await writeSeqFrame(session.writer, 'METRO_FLUSH', decodeSeq(frame));
      }
    }
    if (lastWrite > 0 && mode === 'durable') {
      while (flushes.size >= MAX_FLUSHES_IN_FLIGHT) await Promise.race(flushes);
      if (flushFailure !== undefined) throw flushFailure;
      commit(lastWrite);
    }
  }
  await Promise.allSettled([...flushes]);
  await reading;
  throw ended!;
}
