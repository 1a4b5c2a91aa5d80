import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/adapters/virtual-clock.js';
import type { Connection } from '../../src/adapters/transport.js';
import { loadXxh64 } from '../../src/core/checksum.js';
import { isDrkitError } from '../../src/core/errors.js';
import { FRAME_TYPE, decodeFrame, encodeFrame } from '../../src/replication/internal/frame-codec.js';
import { clientHandshake, serverHandshake, type ClientHandshakeOptions, type ServerHandshakeOptions } from '../../src/replication/internal/handshake.js';
import { decodeMessage, encodeMessage, expectMessage, readMessage, writeMessage } from '../../src/replication/internal/messages.js';
import { memoryDuplex, scriptedConnection } from './protocol-helpers.js';

const xxh64 = await loadXxh64();
const KEY_AB = new Uint8Array(32).fill(7);
const OTHER_KEY = new Uint8Array(32).fill(8);

async function outcome<T>(p: Promise<T>): Promise<{ ok: T } | { code: string }> {
  try {
    return { ok: await p };
  } catch (err) {
    if (!isDrkitError(err)) throw err;
    return { code: err.code };
  }
}

function run(client: Partial<ClientHandshakeOptions>, server: Partial<ServerHandshakeOptions>, connections: [Connection, Connection] = memoryDuplex()) {
  const clock = new VirtualClock();
  const [c, s] = connections;
  return Promise.all([
    outcome(clientHandshake(c, { siteId: 'siteA', clock, psk: KEY_AB, ...client })),
    outcome(serverHandshake(s, { siteId: 'siteB', clock, pskFor: (id) => (id === 'siteA' ? KEY_AB : undefined), ...server })),
  ]);
}

/** Two duplexes joined by a relay that may rewrite each chunk (a man in the middle). */
function relayed(transform: (direction: 'up' | 'down', index: number, chunk: Uint8Array) => Uint8Array): [Connection, Connection] {
  const [client, m1] = memoryDuplex();
  const [m2, server] = memoryDuplex();
  const pump = async (from: Connection, to: Connection, direction: 'up' | 'down') => {
    let i = 0;
    try {
      for await (const chunk of from.read()) await to.write(transform(direction, i++, chunk));
      await to.close();
    } catch {
      to.destroy();
    }
  };
  void pump(m1, m2, 'up');
  void pump(m2, m1, 'down');
  return [client, server];
}

describe('handshake', () => {
  it('authenticates both sides with a pre-shared key, then carries messages', async () => {
    const clock = new VirtualClock();
    const [c, s] = memoryDuplex();
    const [client, server] = await Promise.all([
      clientHandshake(c, { siteId: 'siteA', clock, psk: KEY_AB, expectedPeerSiteId: 'siteB' }),
      serverHandshake(s, { siteId: 'siteB', clock, pskFor: (id) => (id === 'siteA' ? KEY_AB : undefined) }),
    ]);
    expect(client.peerSiteId).toBe('siteB');
    expect(server.peerSiteId).toBe('siteA');
    await writeMessage(client.writer, { type: 'LIST_REQ', requestId: 1, volumeKey: 'siteA/vol-1' });
    expect(await expectMessage(server.reader, 'LIST_REQ')).toEqual({ type: 'LIST_REQ', requestId: 1, volumeKey: 'siteA/vol-1' });
    await writeMessage(server.writer, { type: 'LIST_RES', requestId: 1, snapshots: [] });
    expect((await readMessage(client.reader))?.type).toBe('LIST_RES');
    expect(clock.pendingTimerCount).toBe(0); // deadlines cancelled
  });

  it('authenticates by certificate identity (TLS mode), alone or together with a key', async () => {
    const tls = () => memoryDuplex({ client: { commonName: 'siteA' }, server: { commonName: 'siteB' } });
    const byCertificate = (peer: { commonName?: string }, siteId: string) => peer.commonName === siteId;
    const [c1, s1] = await run({ psk: undefined, authenticate: byCertificate }, { pskFor: undefined, authenticate: byCertificate }, tls());
    expect(c1).toEqual({ ok: expect.objectContaining({ peerSiteId: 'siteB' }) });
    expect(s1).toEqual({ ok: expect.objectContaining({ peerSiteId: 'siteA' }) });
    const [c2, s2] = await run({ authenticate: byCertificate }, { authenticate: byCertificate }, tls());
    expect([c2, s2].every((r) => 'ok' in r)).toBe(true);
    // A certificate for another site is refused even with the right key.
    const [c3, s3] = await run({}, { authenticate: () => false }, tls());
    expect([c3, s3]).toEqual([{ code: 'AUTH_FAILED' }, { code: 'AUTH_FAILED' }]);
  });

  it('fails on both sides with AUTH_FAILED for a wrong key on either side', async () => {
    expect(await run({ psk: OTHER_KEY }, {})).toEqual([{ code: 'AUTH_FAILED' }, { code: 'AUTH_FAILED' }]);
    expect(await run({}, { pskFor: () => OTHER_KEY })).toEqual([{ code: 'AUTH_FAILED' }, { code: 'AUTH_FAILED' }]);
  });

  it('refuses an unknown site, a wrong server and a downgrade to no key', async () => {
    expect(await run({ siteId: 'siteZ' }, {})).toEqual([{ code: 'AUTH_FAILED' }, { code: 'AUTH_FAILED' }]);
    expect(await run({ expectedPeerSiteId: 'siteC' }, {})).toEqual([{ code: 'AUTH_FAILED' }, { code: 'AUTH_FAILED' }]);
    // The server does not prove the key (certificate-only mode): a client holding a key refuses.
    expect(await run({}, { pskFor: undefined, authenticate: () => true })).toEqual([{ code: 'AUTH_FAILED' }, { code: 'AUTH_FAILED' }]);
    // The client does not prove the key: the server refuses.
    expect(await run({ psk: undefined, authenticate: () => true }, {})).toEqual([{ code: 'AUTH_FAILED' }, { code: 'AUTH_FAILED' }]);
  });

  it('requires some authentication and a sane key', async () => {
    const clock = new VirtualClock();
    const [c, s] = memoryDuplex();
    expect(await outcome(clientHandshake(c, { siteId: 'a', clock }))).toEqual({ code: 'INVALID_ARGUMENT' });
    expect(await outcome(clientHandshake(c, { siteId: 'a', clock, psk: new Uint8Array(8) }))).toEqual({ code: 'INVALID_ARGUMENT' });
    expect(await outcome(serverHandshake(s, { siteId: 'b', clock }))).toEqual({ code: 'INVALID_ARGUMENT' });
    expect(await outcome(serverHandshake(s, { siteId: '', clock, authenticate: () => true }))).toEqual({ code: 'INVALID_ARGUMENT' });
  });

  it('rejects frames replayed from an earlier session (fresh nonces on both sides)', async () => {
    const first = memoryDuplex();
    const [c1, s1] = await run({}, {}, first);
    expect('ok' in c1 && 'ok' in s1).toBe(true);
    const clientFrames = first[0].written; // HELLO, AUTH
    const serverFrames = first[1].written; // CHALLENGE, WELCOME
    expect(clientFrames.length).toBe(2);

    // Replay the client's HELLO and AUTH to a new server: its new nonce makes the old proof worthless.
    const clock = new VirtualClock();
    const replayToServer = scriptedConnection(clientFrames);
    const server = await outcome(serverHandshake(replayToServer, { siteId: 'siteB', clock, pskFor: () => KEY_AB }));
    expect(server).toEqual({ code: 'AUTH_FAILED' });
    const answered = replayToServer.written.map((bytes, seq) => decodeMessage(decodeFrame(xxh64, bytes, seq)).type);
    expect(answered).toEqual(['CHALLENGE', 'ERROR']);

    // Replay the server's CHALLENGE and WELCOME to a new client: the proof covers the old client nonce.
    const replayToClient = scriptedConnection(serverFrames);
    expect(await outcome(clientHandshake(replayToClient, { siteId: 'siteA', clock, psk: KEY_AB }))).toEqual({ code: 'AUTH_FAILED' });
  });

  it('rejects a tampered frame with PROTOCOL_ERROR on both sides', async () => {
    for (const target of ['up', 'down'] as const) {
      const connections = relayed((direction, index, chunk) => {
        if (direction !== target || index !== 0) return chunk;
        const copy = chunk.slice();
        copy[20]! ^= 0x10; // inside the JSON payload: only the checksum notices
        return copy;
      });
      expect(await run({}, {}, connections)).toEqual([{ code: 'PROTOCOL_ERROR' }, { code: 'PROTOCOL_ERROR' }]);
    }
  });

  it('refuses another protocol version with FORMAT_VERSION', async () => {
    const clock = new VirtualClock();
    const hello = encodeFrame(xxh64, { type: FRAME_TYPE.HELLO, seq: 0, parts: encodeMessage({ type: 'HELLO', version: 3, siteId: 'siteA', nonce: new Uint8Array(32) }) });
    const conn = scriptedConnection([hello]);
    expect(await outcome(serverHandshake(conn, { siteId: 'siteB', clock, pskFor: () => KEY_AB }))).toEqual({ code: 'FORMAT_VERSION' });
    expect(decodeMessage(decodeFrame(xxh64, conn.written[0]!))).toMatchObject({ type: 'ERROR', code: 'FORMAT_VERSION' });
    // A v1 peer (frames before authentication existed) and a future one are both refused by the header.
    for (const version of [1, 3]) {
      const otherHeader = hello.slice();
      otherHeader[2] = version;
      const conn2 = scriptedConnection([otherHeader]);
      expect(await outcome(serverHandshake(conn2, { siteId: 'siteB', clock, pskFor: () => KEY_AB }))).toEqual({ code: 'FORMAT_VERSION' });
    }
  });

  it('gives up at the deadline on the injected clock (TIMEOUT), and on abort', async () => {
    const clock = new VirtualClock();
    const [c, s] = memoryDuplex();
    const server = outcome(serverHandshake(s, { siteId: 'siteB', clock, pskFor: () => KEY_AB, handshakeTimeoutMs: 2000 }));
    await clock.advance(1999);
    await clock.advance(1);
    expect(await server).toEqual({ code: 'TIMEOUT' });
    expect(c.isClosed || s.isClosed).toBe(true);

    const controller = new AbortController();
    const [c2] = memoryDuplex();
    const client = outcome(clientHandshake(c2, { siteId: 'siteA', clock, psk: KEY_AB, signal: controller.signal }));
    controller.abort();
    expect(await client).toEqual({ code: 'ABORTED' });
  });
});
