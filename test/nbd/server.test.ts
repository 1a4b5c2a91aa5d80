// NbdServer as a library caller sees it: listening (TCP port 0, Unix socket), addresses
// and URIs, coded errors for bad options and busy addresses, the export catalog's naming
// scheme, and the codecs' round trips.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeInfoRequest, decodeName, decodeRequestHeader, encodeSimpleReply } from '../../src/nbd/internal/codec.js';
import { NbdServer, listNbdExports, findNbdExport, type NbdServerOptions } from '../../src/nbd/index.js';
import { memoryFixture, type Fixture } from './nbd-fixtures.js';
import { CMD, RawNbdClient, infoPayload } from './raw-nbd-client.js';

let dir = '';
let fx: Fixture;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'drkit-nbd-server-'));
  fx = await memoryFixture();
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('NbdServer listening', () => {
  it('binds an ephemeral TCP port on loopback and reports it', async () => {
    await using server = await NbdServer.start({ tree: fx.tree, listen: { port: 0 } });
    expect(server.address.kind).toBe('tcp');
    if (server.address.kind !== 'tcp') return;
    expect(server.address.host).toBe('127.0.0.1');
    expect(server.address.port).toBeGreaterThan(0);
    expect(server.uri('disk@s1')).toBe(`nbd://127.0.0.1:${server.address.port}/disk%40s1`);
    const c = await RawNbdClient.connect(server.address);
    await c.go('disk');
    expect((await c.request({ type: CMD.read, cookie: 7n, byteLength: 8 })).cookie).toBe(7n);
    c.destroy();
  });

  it('listens on a Unix socket and removes it when closed; a path in use is ALREADY_EXISTS', async () => {
    const socketPath = join(dir, 'a.sock');
    const server = await NbdServer.start({ tree: fx.tree, listen: { socketPath } });
    expect(server.address).toEqual({ kind: 'unix', socketPath });
    expect(server.uri('disk')).toBe(`nbd+unix:///disk?socket=${encodeURIComponent(socketPath)}`);
    await expect(NbdServer.start({ tree: fx.tree, listen: { socketPath } })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    const c = await RawNbdClient.connect(server.address);
    await c.go('disk@s1');
    await server.close();
    await c.closed;
    expect(existsSync(socketPath)).toBe(false);
    await server.close(); // idempotent
    const stale = join(dir, 'stale.sock');
    writeFileSync(stale, '');
    await expect(NbdServer.start({ tree: fx.tree, listen: { socketPath: stale } })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
  });

  it('a TCP port in use is ALREADY_EXISTS', async () => {
    await using first = await NbdServer.start({ tree: fx.tree, listen: { port: 0 } });
    const port = first.address.kind === 'tcp' ? first.address.port : -1;
    await expect(NbdServer.start({ tree: fx.tree, listen: { port } })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
  });

  it('refuses bad options with INVALID_ARGUMENT naming the field', async () => {
    const bad: [string, unknown][] = [
      ['tree', { listen: { port: 0 } }],
      ['listen', { tree: fx.tree }],
      ['listen.port', { tree: fx.tree, listen: { port: 65536 } }],
      ['listen.port', { tree: fx.tree, listen: { port: 1.5 } }],
      ['listen.host', { tree: fx.tree, listen: { host: '', port: 0 } }],
      ['listen.socketPath', { tree: fx.tree, listen: { socketPath: '' } }],
      ['exports', { tree: fx.tree, listen: { port: 0 }, exports: 'disk' }],
      ['readOnly', { tree: fx.tree, listen: { port: 0 }, readOnly: 'yes' }],
      ['defaultExport', { tree: fx.tree, listen: { port: 0 }, defaultExport: 3 }],
      ['onError', { tree: fx.tree, listen: { port: 0 }, onError: true }],
    ];
    for (const [field, options] of bad) {
      await expect(NbdServer.start(options as NbdServerOptions), field).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', data: { field } });
    }
  });

  it('reports protocol violations to onError and counts them', async () => {
    const seen: string[] = [];
    await using server = await NbdServer.start({ tree: fx.tree, listen: { port: 0 }, onError: (e) => seen.push(e.code) });
    const c = await RawNbdClient.connect(server.address);
    await c.handshake(0xff);
    await c.closed;
    expect(seen).toEqual(['PROTOCOL_ERROR']);
    expect(server.stats()).toMatchObject({ connectionsAccepted: 1, errors: 1 });
  });
});

describe('NBD export catalog', () => {
  it('names volumes by name and snapshots VOLUME@SNAPSHOT, falling back to ids on a clash', async () => {
    const f = await memoryFixture(1);
    const twinA = await f.tree.createVolume({ name: 'twin', byteLength: 64 * 1024 });
    const twinB = await f.tree.createVolume({ name: 'twin', byteLength: 64 * 1024 });
    await f.tree.snapshot(f.disk.id, { name: 's1' }); // a second "s1" of disk
    await f.tree.snapshot(twinA.id, { name: 'daily' });
    await twinA.close();
    await twinB.close();
    const names = listNbdExports(f.tree).map((e) => e.name);
    expect(names).toEqual(['disk', twinA.id, twinB.id, 'disk@snap-1', 'disk@snap-2', `${twinA.id}@daily`]);
    expect(findNbdExport(f.tree, 'snap-2')?.name).toBe('disk@snap-2');
    expect(findNbdExport(f.tree, `${f.disk.id}@snap-1`)?.name).toBe('disk@snap-1');
    expect(findNbdExport(f.tree, 'twin')).toBeUndefined();

    // A deleted volume's snapshots keep its id as their volume part.
    await f.tree.deleteVolume(twinB.id);
    const daily = await f.tree.snapshot(twinA.id, { name: 'weekly' });
    await f.tree.deleteVolume(twinA.id);
    expect(findNbdExport(f.tree, daily.id)?.name).toBe(`${twinA.id}@weekly`);
    // Snapshots taken before the deletion switch to the id too.
    expect(listNbdExports(f.tree).map((e) => e.name)).toContain(`${twinA.id}@daily`);
  });

  it('filters and read-only mode apply to what is listed and what can be opened', async () => {
    const onlySnapshots = { exports: (e: { kind: string }) => e.kind === 'snapshot' };
    expect(listNbdExports(fx.tree, onlySnapshots).map((e) => e.name)).toEqual(['disk@s1']);
    expect(findNbdExport(fx.tree, 'disk', onlySnapshots)).toBeUndefined();
    expect(listNbdExports(fx.tree, { readOnly: true }).every((e) => e.readOnly)).toBe(true);
    await using server = await NbdServer.start({ tree: fx.tree, listen: { port: 0 }, ...onlySnapshots });
    expect(server.listExports().map((e) => e.name)).toEqual(['disk@s1']);
    const c = await RawNbdClient.connect(server.address);
    await expect(c.go('disk')).rejects.toThrow(/GO disk failed/);
    c.destroy();
  });
});

describe('NBD codecs', () => {
  it('request headers decode what the spec encodes, offsets past 2^53 as -1', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.integer({ min: 0, max: 0xffffffff }), (flags, type, cookie, offset, length) => {
        const b = Buffer.alloc(28);
        b.writeUInt32BE(0x25609513, 0);
        b.writeUInt16BE(flags, 4);
        b.writeUInt16BE(type, 6);
        b.writeBigUInt64BE(cookie, 8);
        b.writeBigUInt64BE(offset, 16);
        b.writeUInt32BE(length, 24);
        const h = decodeRequestHeader(b);
        expect(h).toMatchObject({ magicOk: true, commandFlags: flags, type, byteLength: length });
        expect(h.cookie.readBigUInt64BE(0)).toBe(cookie);
        expect(h.byteOffset).toBe(offset > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(offset));
        const reply = encodeSimpleReply(22, h.cookie);
        expect([reply.readUInt32BE(0), reply.readUInt32BE(4), reply.readBigUInt64BE(8)]).toEqual([0x67446698, 22, cookie]);
      }),
      { seed: 15 },
    );
  });

  it('info requests round-trip; names must be UTF-8 without NUL and at most 4096 bytes', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 100 }).filter((s) => !s.includes('\0')), fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 8 }), (name, types) => {
        expect(decodeInfoRequest(infoPayload(name, types))).toEqual({ name, infoTypes: types });
      }),
      { seed: 15 },
    );
    expect(decodeName(Buffer.from([0x61, 0x00]))).toBeUndefined();
    expect(decodeName(Buffer.from([0xc3, 0x28]))).toBeUndefined();
    expect(decodeName(Buffer.alloc(4097, 0x61))).toBeUndefined();
    expect(decodeName(Buffer.alloc(4096, 0x61))).toHaveLength(4096);
    expect(decodeInfoRequest(Buffer.alloc(5))).toBeUndefined();
  });
});
