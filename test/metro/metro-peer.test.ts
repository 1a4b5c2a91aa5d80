// Trust boundaries of the Metro standby (serveMetroPeer) and of the resync source: a region
// whose bytes do not match its fingerprint never reaches the device; sequence gaps and
// writes outside the volume close the connection before touching it; a peer whose disk
// reads back other bytes fails the resync with CORRUPTION and keeps the dirty bits.
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBlockDevice, MemoryTransport, SystemClock, type BlockDevice } from '../../src/adapters/index.js';
import { DirtyRegions, metadataBytesFor, regionFingerprint } from '../../src/metro/index.js';
import { expectMetro, writeJson, writeRegionFrame, writeWriteFrame } from '../../src/metro/internal/metro-messages.js';
import { resyncRegions } from '../../src/metro/resync.js';
import { serveMetroPeer, type PeerHost } from '../../src/metro/metro-peer.js';
import { clientHandshake, type HandshakeResult } from '../../src/replication/internal/handshake.js';
import { PSK, pattern, codeOf } from './metro-harness.js';

const KiB = 1024;
const VOLUME_BYTES = 256 * KiB;
const REGION = 64 * KiB;
const clock = new SystemClock();
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

/** A device whose writes can be made to vanish (a disk that lies). */
function lyingDevice(inner: BlockDevice): BlockDevice & { dropWrites: boolean } {
  const d = {
    dropWrites: false,
    get byteLength() {
      return inner.byteLength;
    },
    capabilities: inner.capabilities,
    read: (o: number, l: number) => inner.read(o, l),
    readv: (r: Parameters<BlockDevice['readv']>[0]) => inner.readv(r),
    write: async (o: number, data: Uint8Array) => (d.dropWrites ? undefined : inner.write(o, data)),
    writev: (w: Parameters<BlockDevice['writev']>[0]) => inner.writev(w),
    discard: (o: number, l: number) => inner.discard(o, l),
    flush: () => inner.flush(),
    resize: (l: number) => inner.resize(l),
    close: () => inner.close(),
  };
  return d;
}

async function standby(device?: BlockDevice): Promise<{ session: HandshakeResult; device: BlockDevice; dirty: DirtyRegions }> {
  const transport = MemoryTransport.create();
  const dev = device ?? (await MemoryBlockDevice.create({ byteLength: VOLUME_BYTES }));
  const dirty = await DirtyRegions.open({ device: await MemoryBlockDevice.create({ byteLength: metadataBytesFor(VOLUME_BYTES, REGION) }), volumeByteLength: VOLUME_BYTES, regionBytes: REGION });
  const host: PeerHost = {
    pairId: 'p1',
    siteId: 'site-b',
    peerSiteId: 'site-a',
    device: dev,
    dirty,
    clock,
    psk: PSK,
    peerTimeoutMs: 5000,
    acceptAttach: async (term) => ({ term }),
    detached: () => undefined,
    resynced: () => undefined,
  };
  const listener = await transport.listen('b:1', { onConnection: (c) => void serveMetroPeer(host, c) });
  const connection = await transport.connect('b:1');
  closers.push(async () => {
    connection.destroy();
    await listener.close();
  });
  const session = await clientHandshake(connection, { siteId: 'site-a', clock, psk: PSK, expectedPeerSiteId: 'site-b' });
  await writeJson(session.writer, 'METRO_ATTACH', { pairId: 'p1', term: 3, byteLength: VOLUME_BYTES, regionBytes: REGION, mode: 'durable' });
  await expectMetro(session.reader, 'METRO_ATTACHED');
  return { session, device: dev, dirty };
}

describe('Metro standby trust boundaries', () => {
  it('a resync region that does not match its fingerprint is refused (CORRUPTION) and never written', async () => {
    const { session, device } = await standby();
    const data = pattern(1, REGION);
    const wrong = regionFingerprint(pattern(2, REGION));
    await writeRegionFrame(session.writer, 'METRO_REGION', 1, wrong, data);
    expect(await codeOf(expectMetro(session.reader, 'METRO_REGION_ACK'))).toBe('CORRUPTION');
    expect((await device.read(REGION, REGION)).every((b) => b === 0)).toBe(true);
  });

  it('a matching region is written and acknowledged with the fingerprint read back', async () => {
    const { session, device } = await standby();
    const data = pattern(1, REGION);
    await writeRegionFrame(session.writer, 'METRO_REGION', 1, regionFingerprint(data), data);
    await expectMetro(session.reader, 'METRO_REGION_ACK');
    expect(Buffer.compare(await device.read(REGION, REGION), data)).toBe(0);
  });

  it('a mirrored write out of sequence closes the connection (PROTOCOL_ERROR) before it touches the device', async () => {
    const { session, device } = await standby();
    await writeJson(session.writer, 'METRO_RESYNC_END', { regionCount: 0 });
    await expectMetro(session.reader, 'METRO_IN_SYNC');
    await writeWriteFrame(session.writer, 2, 0, pattern(3, 4096));
    expect(await codeOf(expectMetro(session.reader, 'METRO_ACK'))).toBe('PROTOCOL_ERROR');
    expect((await device.read(0, 4096)).every((b) => b === 0)).toBe(true);
  });

  it('a mirrored write past the end of the volume closes the connection (PROTOCOL_ERROR)', async () => {
    const { session } = await standby();
    await writeJson(session.writer, 'METRO_RESYNC_END', { regionCount: 0 });
    await expectMetro(session.reader, 'METRO_IN_SYNC');
    await writeWriteFrame(session.writer, 1, VOLUME_BYTES - 1024, pattern(3, 4096));
    expect(await codeOf(expectMetro(session.reader, 'METRO_ACK'))).toBe('PROTOCOL_ERROR');
  });

  it('the resync source fails CORRUPTION when the peer reads back other bytes than it was sent', async () => {
    const device = await MemoryBlockDevice.create({ byteLength: VOLUME_BYTES });
    await device.write(0, pattern(5, VOLUME_BYTES));
    const peerDevice = lyingDevice(await MemoryBlockDevice.create({ byteLength: VOLUME_BYTES }));
    const { session } = await standby(peerDevice);
    peerDevice.dropWrites = true;
    expect(await codeOf(resyncRegions(session, { device, regionBytes: REGION, regions: [0, 2] }))).toBe('CORRUPTION');
  });
});
