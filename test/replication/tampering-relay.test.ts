// An active man in the middle between two real Sites over TCP (issue 14): a relay that
// knows the frame format flips a byte, replays, swaps, injects, strips a tag or truncates,
// and re-checksums and renumbers what it sends, so the xxh64 and the sequence check pass.
// Under a pre-shared key every case is refused — the target reports AUTH_FAILED (or the
// stream ends inside a frame) and commits nothing. The untampered run through the same
// relay proves the relay itself is transparent.
import { afterEach, describe, expect, it } from 'vitest';
import { TcpTransport } from '../../src/adapters/node.js';
import { loadXxh64 } from '../../src/core/checksum.js';
import { isDrkitError } from '../../src/core/errors.js';
import { FRAME_TYPE } from '../../src/replication/internal/frame-codec.js';
import type { Site } from '../../src/replication/index.js';
import { unlistenedSite } from './site-helpers.js';
import { startTamperingRelay, type Tamper, type TamperingRelay } from './tampering-relay.js';

const KiB = 1024;
const PSK = new Uint8Array(32).fill(5);
const xxh64 = await loadXxh64();
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const site = (siteId: string) => unlistenedSite(siteId, PSK, cleanups);

/** Replicates a 2 MiB snapshot named "alpha" (512 blocks of 4 KiB: two batches in flight at once) from A to B through a relay doing `tamper` at the first frame `match` selects. */
async function attack(tamper: Tamper, match: (type: number, payload: Buffer) => boolean): Promise<{ code: string | undefined; relay: TamperingRelay; committedAtTarget: number; a: Site }> {
  const a = await site('A');
  const b = await site('B');
  const listener = await b.site.listen(TcpTransport.create(), '127.0.0.1:0');
  const relay = await startTamperingRelay(xxh64, listener.address, tamper, match);
  cleanups.push(() => relay.close());
  const vol = await a.tree.createVolume({ name: 'v', byteLength: 512 * 4 * KiB, blockBytes: 4 * KiB });
  const data = new Uint8Array(vol.byteLength);
  for (let i = 0; i < data.length; i += 4) new DataView(data.buffer).setUint32(i, Math.imul(i + 1, 2654435761) >>> 0);
  await vol.write(0, data);
  const snap = await a.tree.snapshot(vol.id, { name: 'alpha' });
  let code: string | undefined;
  try {
    await a.site.replicate(snap.id, { siteId: 'B', address: relay.address, transport: TcpTransport.create(), psk: PSK }, { retries: 0 });
  } catch (err) {
    if (!isDrkitError(err)) throw err;
    code = err.code;
  }
  return { code, relay, committedAtTarget: b.site.listSnapshots().length, a: a.site };
}

const isType = (type: number) => (t: number) => t === type;
const forgedAbort = Buffer.from(JSON.stringify({ sessionId: 'forged-session', reason: 'injected' }), 'utf8');

describe('a tampering relay between two sites (PSK, TCP)', () => {
  it('is transparent when it does not tamper (the attack harness itself works)', async () => {
    const r = await attack({ kind: 'none' }, isType(FRAME_TYPE.EXTENTS));
    expect(r.code).toBeUndefined();
    expect(r.relay.tampered()).toBe(true);
    expect(r.committedAtTarget).toBe(1);
  });

  const cases: { name: string; tamper: Tamper; match: (type: number, payload: Buffer) => boolean }[] = [
    // The snapshot name in BEGIN_REQ: 'alpha' -> 'Alpha' is still valid JSON; only the tag notices.
    { name: 'flips a byte of a message (re-checksummed)', tamper: { kind: 'flip', at: (p) => p.indexOf('alpha'), mask: 0x20 }, match: isType(FRAME_TYPE.BEGIN_REQ) },
    { name: 'replays the previous frame, renumbered', tamper: { kind: 'replay' }, match: isType(FRAME_TYPE.EXTENTS) },
    // The two batches' have-queries are in flight together, so the second follows the first without waiting for an answer.
    { name: 'swaps two frames, renumbered', tamper: { kind: 'swap' }, match: isType(FRAME_TYPE.HAVE_REQ) },
    // A harmless-looking ABORT of no session before the commit: without authentication the commit would land.
    { name: 'injects a forged frame', tamper: { kind: 'inject', type: FRAME_TYPE.ABORT, payload: forgedAbort }, match: isType(FRAME_TYPE.COMMIT_REQ) },
    { name: 'strips the tag of a frame', tamper: { kind: 'strip-tag' }, match: isType(FRAME_TYPE.COMMIT_REQ) },
  ];
  for (const c of cases) {
    it(`refuses when it ${c.name}: AUTH_FAILED at the target, nothing committed`, async () => {
      const r = await attack(c.tamper, c.match);
      expect(r.relay.tampered()).toBe(true);
      expect(r.relay.serverErrors).toEqual(['AUTH_FAILED']);
      expect(r.code).toBe('AUTH_FAILED');
      expect(r.committedAtTarget).toBe(0);
    });
  }

  it('refuses a truncated stream: the sender fails with a coded error, nothing committed', async () => {
    const r = await attack({ kind: 'truncate' }, isType(FRAME_TYPE.EXTENTS));
    expect(r.relay.tampered()).toBe(true);
    expect(r.code).toBe('CONNECTION_LOST');
    expect(r.committedAtTarget).toBe(0);
  });
});
