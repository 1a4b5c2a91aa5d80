// The fixed newstyle handshake, driven byte by byte by the raw test client: every refusal
// the server makes is checked here, and each test fails when its check is removed.
import { describe, expect, it } from 'vitest';
import { DISK_BLOCK_BYTES, DISK_BYTES, perTestServer, startServer } from './nbd-fixtures.js';
import { INFO, MAGIC, OPT, REP, TX_FLAG, infoPayload } from './raw-nbd-client.js';

const h = perTestServer();

describe('NBD negotiation', () => {
  it('greets with NBDMAGIC, IHAVEOPT and FIXED_NEWSTYLE | NO_ZEROES', async () => {
    const c = await h.connect();
    const g = await c.handshake();
    expect(g).toEqual({ init: MAGIC.init, opts: MAGIC.opts, handshakeFlags: 3 });
  });

  it('closes the connection on unknown client flags', async () => {
    const c = await h.connect();
    await c.handshake(1 | (1 << 5));
    await c.closed;
    expect(h.errors.map((e) => e.code)).toEqual(['PROTOCOL_ERROR']);
  });

  it('closes the connection on an option without IHAVEOPT', async () => {
    const c = await h.connect();
    await c.handshake();
    c.sendOption(OPT.list, undefined, { magic: 0x1122334455667788n });
    await c.closed;
    expect(h.errors.map((e) => e.code)).toEqual(['PROTOCOL_ERROR']);
  });

  it('closes the connection on an option declaring more than 64 KiB', async () => {
    const c = await h.connect();
    await c.handshake();
    c.sendOption(OPT.go, Buffer.alloc(0), { declaredBytes: 64 * 1024 + 1 });
    await c.closed;
    expect(h.errors.map((e) => e.code)).toEqual(['PROTOCOL_ERROR']);
  });

  it('answers an unknown option NBD_REP_ERR_UNSUP and keeps negotiating', async () => {
    const c = await h.connect();
    await c.handshake();
    c.sendOption(99, Buffer.from('ignored payload'));
    const r = await c.readOptionReply();
    expect([r.option, r.type]).toEqual([99, REP.errUnsup]);
    c.sendOption(OPT.structuredReply);
    expect((await c.readOptionReply()).type).toBe(REP.errUnsup);
    const { final } = await c.info(OPT.info, 'disk');
    expect(final.type).toBe(REP.ack);
  });

  it('lists volumes and snapshots with descriptions; refuses LIST with data', async () => {
    const c = await h.connect();
    await c.handshake();
    c.sendOption(OPT.list);
    const entries: { name: string; description: string }[] = [];
    for (;;) {
      const r = await c.readOptionReply();
      if (r.type === REP.ack) break;
      expect(r.type).toBe(REP.server);
      const n = r.payload.readUInt32BE(0);
      entries.push({ name: r.payload.subarray(4, 4 + n).toString(), description: r.payload.subarray(4 + n).toString() });
    }
    expect(entries.map((e) => e.name)).toEqual(['disk', 'disk@s1']);
    expect(entries[0]!.description).toMatch(/read-write/);
    expect(entries[1]!.description).toMatch(/snapshot snap-1 "s1".*read-only/);
    c.sendOption(OPT.list, Buffer.from('x'));
    expect((await c.readOptionReply()).type).toBe(REP.errInvalid);
  });

  it('NBD_OPT_INFO describes an export (size, flags, block sizes, name, description) and stays in negotiation', async () => {
    const c = await h.connect();
    await c.handshake();
    const { infos, final } = await c.info(OPT.info, 'snap-1', [INFO.name, INFO.description, INFO.blockSize]);
    expect(final.type).toBe(REP.ack);
    const e = infos.get(INFO.export)!;
    expect(Number(e.readBigUInt64BE(0))).toBe(DISK_BYTES);
    const flags = e.readUInt16BE(8);
    expect(flags & TX_FLAG.hasFlags).toBeTruthy();
    expect(flags & TX_FLAG.readOnly).toBeTruthy();
    expect(flags & (TX_FLAG.trim | TX_FLAG.writeZeroes | TX_FLAG.fua)).toBe(0);
    const b = infos.get(INFO.blockSize)!;
    expect([b.readUInt32BE(0), b.readUInt32BE(4), b.readUInt32BE(8)]).toEqual([1, DISK_BLOCK_BYTES, 32 * 1024 * 1024]);
    expect(infos.get(INFO.name)!.toString()).toBe('disk@s1'); // the alias resolved to the canonical name
    expect(infos.get(INFO.description)!.toString()).toMatch(/read-only/);
    const volume = await c.info(OPT.info, 'disk');
    const vflags = volume.infos.get(INFO.export)!.readUInt16BE(8);
    expect(vflags & TX_FLAG.readOnly).toBe(0);
    expect(vflags & (TX_FLAG.flush | TX_FLAG.fua | TX_FLAG.trim | TX_FLAG.writeZeroes)).toBe(TX_FLAG.flush | TX_FLAG.fua | TX_FLAG.trim | TX_FLAG.writeZeroes);
  });

  it('answers an unknown export NBD_REP_ERR_UNKNOWN and keeps negotiating', async () => {
    const c = await h.connect();
    await c.handshake();
    const r = await c.info(OPT.go, 'no-such-volume');
    expect(r.final.type).toBe(REP.errUnknown);
    expect(r.infos.size).toBe(0);
    expect(r.final.payload.toString()).toMatch(/no-such-volume/);
    expect((await c.info(OPT.info, '')).final.type).toBe(REP.errUnknown); // no default export
    expect((await c.info(OPT.go, 'disk')).final.type).toBe(REP.ack);
  });

  it('answers a malformed NBD_OPT_GO NBD_REP_ERR_INVALID', async () => {
    const c = await h.connect();
    await c.handshake();
    const p = infoPayload('disk', [INFO.name]);
    p.writeUInt32BE(p.length, 0); // name length past the payload
    c.sendOption(OPT.go, p);
    expect((await c.readOptionReply()).type).toBe(REP.errInvalid);
    const short = infoPayload('disk', [INFO.name, INFO.description]);
    short.writeUInt16BE(3, 8); // count says three types, two follow
    c.sendOption(OPT.go, short);
    expect((await c.readOptionReply()).type).toBe(REP.errInvalid);
  });

  it('NBD_OPT_EXPORT_NAME: an unknown name hangs up; a known one sends size, flags and zeroes unless NO_ZEROES', async () => {
    const bad = await h.connect();
    await bad.handshake();
    bad.sendOption(OPT.exportName, Buffer.from('nope'));
    await bad.closed;
    expect(h.errors.map((e) => e.code)).toEqual(['PROTOCOL_ERROR']);
    expect(String((h.errors[0] as Error).message)).toMatch(/no export named "nope"/);

    for (const [clientFlags, replyBytes] of [[3, 10], [1, 134]] as const) {
      const c = await h.connect();
      await c.handshake(clientFlags);
      c.sendOption(OPT.exportName, Buffer.from('disk'));
      const r = await c.read(replyBytes);
      expect(Number(r.readBigUInt64BE(0))).toBe(DISK_BYTES);
      expect(r.readUInt16BE(8) & TX_FLAG.hasFlags).toBeTruthy();
      expect(r.subarray(10).every((x) => x === 0)).toBe(true);
    }
  });

  it('NBD_OPT_ABORT is acknowledged and the server closes', async () => {
    const c = await h.connect();
    await c.handshake();
    c.sendOption(OPT.abort);
    const r = await c.readOptionReply();
    expect([r.option, r.type]).toEqual([OPT.abort, REP.ack]);
    await c.closed;
    expect(h.errors).toEqual([]);
  });

  it('closes a connection that keeps negotiating past 256 options', async () => {
    const c = await h.connect();
    await c.handshake();
    for (let i = 0; i < 256; i++) {
      c.sendOption(98);
      expect((await c.readOptionReply()).type).toBe(REP.errUnsup);
    }
    c.sendOption(98);
    await c.closed;
    expect(h.errors.map((e) => e.code)).toEqual(['PROTOCOL_ERROR']);
  });
});

describe('NBD default export', () => {
  it('an empty name selects defaultExport when given', async () => {
    const other = await startServer(h.fx.tree, { defaultExport: 'disk@s1' });
    try {
      const c = await h.connect(other.server);
      await c.handshake();
      const { infos, final } = await c.info(OPT.go, '', [INFO.name]);
      expect(final.type).toBe(REP.ack);
      expect(infos.get(INFO.name)!.toString()).toBe('disk@s1');
    } finally {
      await other.server.close();
    }
  });
});
