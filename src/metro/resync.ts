/**
 * Delta resync, source side: after the link returns, the side that continued (the higher
 * lease term) sends only the regions either side has marked dirty, each with its SHA-256;
 * the peer checks the fingerprint before writing and answers with the fingerprint of what
 * it then reads back, which the source compares with its own.
 *
 * Correctness promise: `resyncRegions` resolves only when every region in the union reads
 * back at the peer with the source's fingerprint and the peer made them durable
 * (METRO_IN_SYNC after its flush); any mismatch is CORRUPTION and nothing is cleared, so an
 * interrupted or failed resync is simply redone from the same bits next time.
 */
import { createHash } from 'node:crypto';
import type { BlockDevice } from '../adapters/block-device.js';
import { equalBytes } from '../core/bytes.js';
import { DrkitError } from '../core/errors.js';
import type { HandshakeResult } from '../replication/internal/handshake.js';
import { decodeRegion, expectMetro, writeJson, writeRegionFrame } from './internal/metro-messages.js';

/** Regions sent ahead of their acknowledgements: 8 keeps the link busy without holding more than 8 regions (<= 32 MiB) in flight. */
export const RESYNC_WINDOW_REGIONS = 8;

/** What a resync moved. */
export interface ResyncResult {
  /** Regions sent. */
  readonly regionCount: number;
  /** Data bytes of those regions (the dirty bytes). */
  readonly dataBytes: number;
}

/** Options of {@link resyncRegions}. */
export interface ResyncOptions {
  readonly device: BlockDevice;
  readonly regionBytes: number;
  /** Regions to send, ascending and distinct. */
  readonly regions: readonly number[];
  readonly onProgress?: (progress: { phase: 'resync'; completedBytes: number; totalBytes: number }) => void;
}

/** The SHA-256 of `bytes`. */
export function regionFingerprint(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

/** Sends `regions` over an attached session and waits for METRO_IN_SYNC. @throws CORRUPTION, CONNECTION_LOST, PROTOCOL_ERROR */
export async function resyncRegions(session: HandshakeResult, options: ResyncOptions): Promise<ResyncResult> {
  const { device, regionBytes, regions } = options;
  const lengthOf = (r: number): number => Math.min(regionBytes, device.byteLength - r * regionBytes);
  const totalBytes = regions.reduce((sum, r) => sum + lengthOf(r), 0);
  const sent: { regionIndex: number; fingerprint: Uint8Array }[] = [];
  let acked = 0;
  let completedBytes = 0;
  const awaitAck = async (): Promise<void> => {
    const ack = decodeRegion(await expectMetro(session.reader, 'METRO_REGION_ACK'));
    const expected = sent[acked]!;
    if (ack.regionIndex !== expected.regionIndex) throw new DrkitError('PROTOCOL_ERROR', `peer acknowledged region ${ack.regionIndex}, expected ${expected.regionIndex}`);
    if (!equalBytes(ack.fingerprint, expected.fingerprint)) {
      throw new DrkitError('CORRUPTION', `region ${ack.regionIndex} reads back at the peer with another fingerprint`, { data: { regionIndex: ack.regionIndex } });
    }
    completedBytes += lengthOf(ack.regionIndex);
    acked++;
    options.onProgress?.({ phase: 'resync', completedBytes, totalBytes });
  };
  for (const regionIndex of regions) {
    if (sent.length - acked >= RESYNC_WINDOW_REGIONS) await awaitAck();
    const data = await device.read(regionIndex * regionBytes, lengthOf(regionIndex));
    const fingerprint = regionFingerprint(data);
    sent.push({ regionIndex, fingerprint });
    await writeRegionFrame(session.writer, 'METRO_REGION', regionIndex, fingerprint, data);
  }
  while (acked < sent.length) await awaitAck();
  await writeJson(session.writer, 'METRO_RESYNC_END', { regionCount: regions.length });
  await expectMetro(session.reader, 'METRO_IN_SYNC');
  return { regionCount: regions.length, dataBytes: totalBytes };
}
