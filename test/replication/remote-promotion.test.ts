// PROMOTE_REQ at the target, check by check (issue 14): only the lineage's last writer,
// whose final snapshot the target holds, may hand it over, at the generation that snapshot
// carries, when nothing newer is known and nothing else writes it there; the Site may
// refuse more; a group is promoted all or none; a repeated request is answered as done.
import { describe, expect, it } from 'vitest';
import { MemoryTransport, SystemClock } from '../../src/adapters/index.js';
import { serverHandshake } from '../../src/replication/internal/handshake.js';
import { readMessage, writeMessage, type Message, type MessageOf } from '../../src/replication/internal/messages.js';
import { failover, lineageStatus, originOf, snapshotPromoted, volumeKeyOf } from '../../src/replication/index.js';
import { SeededPrng } from '../../src/testing/index.js';
import { errorOf, memorySite } from './site-helpers.js';

const KiB = 1024;
const PSK = new Uint8Array(32).fill(17);

/** A writes three lineages; their snapshots are replicated to B and C. B's own rule refuses promotions of the third. */
async function world() {
  const net = MemoryTransport.create();
  const a = await memorySite('A', net, PSK);
  const rule = { refusedLineage: '' };
  const b = await memorySite('B', net, PSK, { allowRemotePromotion: (_peer, lineage) => lineage !== rule.refusedLineage });
  const c = await memorySite('C', net, PSK);
  const snaps = [];
  for (const name of ['one', 'two', 'refused']) {
    const vol = await a.tree.createVolume({ name, byteLength: 8 * 16 * KiB });
    await vol.write(0, new SeededPrng(name.length).fill(new Uint8Array(vol.byteLength)));
    await vol.close();
    const s = await a.tree.snapshot(vol.id, { name: `${name}-final` });
    for (const to of [b, c]) await a.site.replicate(s.id, to.remote);
    snaps.push({ snapshot: s, lineage: volumeKeyOf(originOf(s, 'A')) });
  }
  const [one, two, refused] = snaps as [(typeof snaps)[0], (typeof snaps)[0], (typeof snaps)[0]];
  rule.refusedLineage = refused.lineage;
  const member = (x: typeof one, extra: Record<string, unknown> = {}) => ({ lineage: x.lineage, originSnapshotId: x.snapshot.id, sourceGeneration: 0, volumeName: `${x.lineage}-promoted`, ...extra });
  const close = async () => {
    for (const s of [a, b, c]) await s.site.close();
  };
  return { a, b, c, one, two, refused, member, close };
}

const NO_RETRY = { retries: 0 };

describe('remote promotion (PROMOTE_REQ)', () => {
  it('promotes a group all together, and answers a repeated request as done', async () => {
    const w = await world();
    const first = await w.a.site.promoteRemote(w.b.remote, [w.member(w.one), w.member(w.two)], NO_RETRY);
    expect(first.map((m) => [m.lineage, m.generation])).toEqual([[w.one.lineage, 1], [w.two.lineage, 1]]);
    for (const [i, x] of [w.one, w.two].entries()) expect(await lineageStatus(w.b.site, x.lineage)).toMatchObject({ generation: 1, writableVolumeId: first[i]!.volumeId });
    expect(await w.a.site.promoteRemote(w.b.remote, [w.member(w.one), w.member(w.two)], NO_RETRY)).toEqual(first);
    expect(w.b.site.listVolumes()).toHaveLength(2);
    await w.close();
  });

  it('refuses a site that is not the lineage\'s last writer (NOT_FOUND: no final snapshot of its own there)', async () => {
    const w = await world();
    // C holds A's snapshot too, but it is not C's: C cannot hand A's lineage over.
    const atC = w.c.site.listSnapshots().find((s) => s.name === 'one-final')!;
    const err = await errorOf(w.c.site.promoteRemote(w.b.remote, [{ ...w.member(w.one), originSnapshotId: atC.id }], NO_RETRY));
    expect(err.code).toBe('NOT_FOUND');
    expect((await lineageStatus(w.b.site, w.one.lineage)).writableVolumeId).toBeUndefined();
    await w.close();
  });

  it('refuses a generation the final snapshot does not carry, and promotes no member of that group', async () => {
    const w = await world();
    const err = await errorOf(w.a.site.promoteRemote(w.b.remote, [w.member(w.one), w.member(w.two, { sourceGeneration: 3 })], NO_RETRY));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(/is of generation 0, not 3/);
    expect((await lineageStatus(w.b.site, w.one.lineage)).writableVolumeId).toBeUndefined();
    expect(w.b.site.listVolumes()).toEqual([]);
    await w.close();
  });

  it('refuses when a newer generation is known there (STALE_GENERATION)', async () => {
    const w = await world();
    // B fails over and replicates its generation-1 snapshot to C: C now knows generation 1.
    await (await failover(w.b.site, w.one.lineage, { name: 'b-one' })).volume.close();
    const g1 = await snapshotPromoted(w.b.site, w.one.lineage, { name: 'g1' });
    await w.b.site.replicate(g1.id, w.c.remote, NO_RETRY);
    expect((await errorOf(w.a.site.promoteRemote(w.c.remote, [w.member(w.one)], NO_RETRY))).code).toBe('STALE_GENERATION');
    expect((await lineageStatus(w.c.site, w.one.lineage)).writableVolumeId).toBeUndefined();
    await w.close();
  });

  it('refuses when the target already writes the lineage from another snapshot (ALREADY_EXISTS)', async () => {
    const w = await world();
    const vol = await w.a.tree.openVolume(w.one.snapshot.volumeId);
    await vol.write(0, new Uint8Array(16 * KiB).fill(3));
    await vol.close();
    const newer = await w.a.tree.snapshot(w.one.snapshot.volumeId, { name: 'newer' });
    await w.a.site.replicate(newer.id, w.b.remote, NO_RETRY);
    await (await failover(w.b.site, w.one.lineage, { name: 'b-one' })).volume.close(); // from `newer`
    expect((await errorOf(w.a.site.promoteRemote(w.b.remote, [w.member(w.one)], NO_RETRY))).code).toBe('ALREADY_EXISTS');
    await w.close();
  });

  it('refuses what the target\'s allowRemotePromotion refuses (AUTH_FAILED), before any member changes', async () => {
    const w = await world();
    expect((await errorOf(w.a.site.promoteRemote(w.b.remote, [w.member(w.one), w.member(w.refused)], NO_RETRY))).code).toBe('AUTH_FAILED');
    expect(w.b.site.listVolumes()).toEqual([]);
    await w.close();
  });

  it('the requester refuses an answer that does not match its request (PROTOCOL_ERROR)', async () => {
    const w = await world();
    const net = w.a.remote.transport as MemoryTransport;
    // Targets that authenticate, then answer about something else.
    const liar = await liarAt(net, 'liar:7000', (request) =>
      request.type === 'PROMOTE_REQ'
        ? { type: 'PROMOTE_RES', requestId: request.requestId, members: [{ lineage: 'X/other', generation: 0, volumeId: 'vol-9' }] }
        : { type: 'STATUS_RES', requestId: request.requestId, lineage: 'X/other', generation: 0 },
    );
    const remote = { siteId: 'liar', address: liar.address, transport: net, psk: PSK };
    const err = await errorOf(w.a.site.promoteRemote(remote, [w.member(w.one)], NO_RETRY));
    expect([err.code, err.data.answered]).toEqual(['PROTOCOL_ERROR', ['X/other']]);
    const status = await errorOf(w.a.site.remoteStatus(remote, { lineage: w.one.lineage }, NO_RETRY));
    expect([status.code, status.data.lineage]).toEqual(['PROTOCOL_ERROR', 'X/other']);
    await liar.close();
    await w.close();
  });
});

/** A server that authenticates as site "liar" and answers the first PROMOTE_REQ or STATUS_REQ with `answer(request)`. */
function liarAt(net: MemoryTransport, address: string, answer: (request: MessageOf<'PROMOTE_REQ'> | MessageOf<'STATUS_REQ'>) => Message) {
  return net.listen(address, {
    onConnection: (connection) => {
      void (async () => {
        const h = await serverHandshake(connection, { siteId: 'liar', clock: new SystemClock(), pskFor: () => PSK });
        const request = await readMessage(h.reader);
        if (request?.type === 'PROMOTE_REQ' || request?.type === 'STATUS_REQ') await writeMessage(h.writer, answer(request));
        await readMessage(h.reader).catch(() => undefined);
      })().catch(() => undefined);
    },
  });
}
