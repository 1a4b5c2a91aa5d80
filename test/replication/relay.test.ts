// The relay drkit ships (a remote site "with a proxy"), over real TCP: replication through
// it lands bit-identical; it holds no key, so a man in the middle behind it that flips a
// byte (re-checksummed, so only the frame tag can notice) ends the session with
// AUTH_FAILED and nothing committed; its connection bound and its fixed destination hold.
import { afterEach, describe, expect, it } from 'vitest';
import { TcpTransport } from '../../src/adapters/node.js';
import { loadXxh64 } from '../../src/core/checksum.js';
import { DrkitError } from '../../src/core/errors.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { startRelay, type RemoteSite } from '../../src/replication/index.js';
import { FRAME_TYPE } from '../../src/replication/internal/frame-codec.js';
import { SeededPrng } from '../../src/testing/index.js';
import { errorOf, snapshotBytes, unlistenedSite } from './site-helpers.js';
import { startTamperingRelay } from './tampering-relay.js';

const KiB = 1024;
const PSK = new Uint8Array(32).fill(6);
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const site = (siteId: string) => unlistenedSite(siteId, PSK, cleanups);

/** A's 1 MiB snapshot "alpha" of seeded random data. */
async function snapshotAtA(tree: SnapshotTree) {
  const vol = await tree.createVolume({ name: 'v', byteLength: 256 * 4 * KiB, blockBytes: 4 * KiB });
  await vol.write(0, new SeededPrng(14).fill(new Uint8Array(vol.byteLength)));
  return tree.snapshot(vol.id, { name: 'alpha' });
}

async function relayTo(to: string, options: { maxConnections?: number; onError?: (e: DrkitError) => void } = {}) {
  const relay = await startRelay({ listen: '127.0.0.1:0', to, transport: TcpTransport.create(), ...options });
  cleanups.push(() => relay.close());
  return relay;
}

describe('the relay (bridgehead) between two sites over TCP', () => {
  it('forwards a replication end to end: the snapshot at the target is bit-identical', async () => {
    const a = await site('A');
    const b = await site('B');
    const listener = await b.site.listen(TcpTransport.create(), '127.0.0.1:0');
    const relay = await relayTo(listener.address);
    const snap = await snapshotAtA(a.tree);
    const remote: RemoteSite = { siteId: 'B', address: listener.address, proxyAddress: relay.address, transport: TcpTransport.create(), psk: PSK };
    const result = await a.site.replicate(snap.id, remote, { retries: 0 });
    expect(await snapshotBytes(b.tree, result.remoteSnapshotIds[0]!)).toEqual(await snapshotBytes(a.tree, snap.id));
    const stats = relay.stats();
    expect(stats.connections).toBe(1);
    // The extents went through the relay, not around it.
    expect(stats.forwardedBytes).toBeGreaterThan(256 * 4 * KiB);
    expect(stats.returnedBytes).toBeGreaterThan(0);
  });

  it('cannot change a byte that lands: a byte flipped behind it (re-checksummed) fails the transfer with AUTH_FAILED, nothing committed', async () => {
    const a = await site('A');
    const b = await site('B');
    const listener = await b.site.listen(TcpTransport.create(), '127.0.0.1:0');
    const tamper = await startTamperingRelay(await loadXxh64(), listener.address, { kind: 'flip', at: (p) => p.indexOf('alpha'), mask: 0x20 }, (t) => t === FRAME_TYPE.BEGIN_REQ);
    cleanups.push(() => tamper.close());
    const relay = await relayTo(tamper.address);
    const snap = await snapshotAtA(a.tree);
    const err = await errorOf(a.site.replicate(snap.id, { siteId: 'B', address: listener.address, proxyAddress: relay.address, transport: TcpTransport.create(), psk: PSK }, { retries: 0 }));
    expect(tamper.tampered()).toBe(true);
    expect(err.code).toBe('AUTH_FAILED');
    expect(tamper.serverErrors).toEqual(['AUTH_FAILED']);
    expect(b.site.listSnapshots()).toHaveLength(0);
    expect(relay.stats().connections).toBe(1);
  });

  it('refuses connections past maxConnections, and reports a destination it cannot reach', async () => {
    const b = await site('B');
    const listener = await b.site.listen(TcpTransport.create(), '127.0.0.1:0');
    const relay = await relayTo(listener.address, { maxConnections: 1 });
    const transport = TcpTransport.create();
    const first = await transport.connect(relay.address);
    await waitFor(() => relay.stats().active === 1);
    // Destroyed at once: the connect itself may see the reset, or the stream ends.
    expect(await transport.connect(relay.address).then(drain, () => 'ended')).toBe('ended');
    expect(relay.stats()).toMatchObject({ active: 1, refused: 1 });
    first.destroy();

    const errors: DrkitError[] = [];
    const nowhere = await TcpTransport.create().listen('127.0.0.1:0', { onConnection: (c) => c.destroy() });
    const deadAddress = nowhere.address;
    await nowhere.close();
    const dead = await relayTo(deadAddress, { onError: (e) => errors.push(e) });
    expect(await transport.connect(dead.address).then(drain, () => 'ended')).toBe('ended');
    await waitFor(() => errors.length === 1);
    expect(errors[0]!.code).toBe('CONNECTION_REFUSED');
    expect(dead.stats()).toMatchObject({ connections: 0, refused: 1 });
  });

  it('refuses bad options with INVALID_ARGUMENT', async () => {
    await expect(startRelay({ listen: '127.0.0.1:0', to: '', transport: TcpTransport.create() })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: 'to' } });
    await expect(startRelay({ listen: '127.0.0.1:0', to: '127.0.0.1:1', transport: TcpTransport.create(), maxConnections: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

/** Reads a connection to its end: 'ended' when it ended (cleanly or broken). */
async function drain(c: { read(): AsyncIterable<Uint8Array> }): Promise<'ended'> {
  try {
    for await (const _ of c.read()) void _;
  } catch {
    // a destroyed connection breaks: also an end
  }
  return 'ended';
}

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(condition()).toBe(true);
}
