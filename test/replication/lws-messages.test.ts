// NearSync messages (types 40-45): round trips through frames, and every bound of the
// decoder (counts, lengths, codecs, increasing sequence numbers) refused with
// PROTOCOL_ERROR; the encoder refuses what the decoder would (INVALID_ARGUMENT).
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, type Message } from '../../src/replication/internal/messages.js';
import { FRAME_TYPE } from '../../src/replication/internal/frame-codec.js';
import { decodeLwsMessage, encodeLwsMessage, type LwsMessage } from '../../src/replication/internal/lws-messages.js';

const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
const frame = (m: Message) => ({ type: FRAME_TYPE[m.type], flags: 0, seq: 0, payload: concat(encodeMessage(m)) });

const batch: LwsMessage = {
  type: 'LWS_BATCH',
  batchId: 7,
  sessionId: 'pd-1',
  records: [
    { kind: 'write', seq: 5, volumeId: 'vol-1', byteOffset: 4096, checksum: 0x0123_4567_89ab_cdefn, codec: 0, rawLength: 3, data: new Uint8Array([1, 2, 3]) },
    { kind: 'marker', seq: 6, timeMs: 1_796_000_000_000, volumeIds: ['vol-1', 'vol-2'] },
  ],
};

const fp = (b: number) => new Uint8Array(32).fill(b);
const blocksBatch: LwsMessage = {
  type: 'LWS_BATCH',
  batchId: 8,
  sessionId: 'pd-1',
  records: [
    { kind: 'blocks', seq: 9, volumeId: 'vol-1', byteOffset: 16384, blockBytes: 512, digestBytes: 32, blocks: [{ kind: 'hole' }, { kind: 'ref', fingerprint: fp(1) }, { kind: 'data', fingerprint: fp(2), codec: 0, data: new Uint8Array(512).fill(3) }] },
    { kind: 'marker', seq: 10, timeMs: 5, volumeIds: ['vol-1'] },
  ],
};

describe('NearSync messages', () => {
  it('whole-block records and fingerprint queries round-trip (types 44-45); the decoder refuses bad geometry, tags and lengths', () => {
    const msgs: LwsMessage[] = [
      blocksBatch,
      { type: 'LWS_HAVE_REQ', requestId: 3, sessionId: 'pd-1', fingerprints: [fp(1), fp(2), fp(9)] },
      { type: 'LWS_HAVE_RES', requestId: 3, have: [true, false, true, true, false, false, false, false, true] },
    ];
    expect(msgs.slice(1).map((m) => FRAME_TYPE[m.type])).toEqual([44, 45]);
    for (const m of msgs) expect(decodeMessage(frame(m))).toEqual(m);
    const bytes = concat(encodeLwsMessage(blocksBatch));
    const mutate = (f: (b: Uint8Array, dv: DataView) => void) => {
      const b = bytes.slice();
      f(b, new DataView(b.buffer));
      return () => decodeLwsMessage('LWS_BATCH', b);
    };
    const rec = 4 + 1 + 4 + 4; // batchId, session id, count
    const geometry = rec + 1 + 8 + 6 + 8; // kind, seq, volume id, byteOffset -> blockBytes u32, digestBytes u8, count u32
    const firstTag = geometry + 4 + 1 + 4;
    const dataLengthAt = firstTag + 1 + 1 + 32 + 1 + 32 + 1;
    const protocolError = expect.objectContaining({ code: 'PROTOCOL_ERROR' });
    expect(mutate((_, dv) => dv.setUint32(geometry, 1000))).toThrow(protocolError); // not a power of two
    expect(mutate((_, dv) => dv.setUint32(geometry, 256))).toThrow(protocolError); // under MIN_BLOCK_BYTES
    expect(mutate((b) => (b[geometry + 4] = 0))).toThrow(protocolError); // digestBytes 0
    expect(mutate((b) => (b[geometry + 4] = 65))).toThrow(protocolError); // digestBytes over 64
    expect(mutate((_, dv) => dv.setUint32(geometry + 5, 0))).toThrow(protocolError); // no blocks
    expect(mutate((_, dv) => dv.setUint32(geometry + 5, 8193))).toThrow(protocolError); // 8193 x 512 > 4 MiB
    expect(mutate((b) => (b[firstTag] = 3))).toThrow(protocolError); // unknown tag
    expect(mutate((_, dv) => dv.setUint32(dataLengthAt, 511))).toThrow(protocolError); // raw data not blockBytes
    expect(() => decodeLwsMessage('LWS_BATCH', bytes.subarray(0, bytes.length - 20))).toThrow(protocolError);
    const have = concat(encodeLwsMessage(msgs[1]!));
    const h = have.slice();
    new DataView(h.buffer).setUint32(4 + 1 + 4 + 1, 4); // claims 4 fingerprints, holds 3
    expect(() => decodeLwsMessage('LWS_HAVE_REQ', h)).toThrow(protocolError);
    const res = concat(encodeLwsMessage(msgs[2]!));
    expect(() => decodeLwsMessage('LWS_HAVE_RES', res.subarray(0, res.length - 1))).toThrow(protocolError);
    const bad = (m: LwsMessage) => expect(() => encodeLwsMessage(m)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    bad({ type: 'LWS_HAVE_REQ', requestId: 1, sessionId: 'pd-1', fingerprints: [fp(1), new Uint8Array(20)] });
    bad({ type: 'LWS_HAVE_REQ', requestId: 1, sessionId: 'pd-1', fingerprints: [] });
    bad({ ...blocksBatch, records: [{ kind: 'blocks', seq: 9, volumeId: 'vol-1', byteOffset: 0, blockBytes: 512, digestBytes: 32, blocks: [{ kind: 'ref', fingerprint: new Uint8Array(16) }] }] } as LwsMessage);
  });

  it('round-trip through frames with their numbers 40-43', () => {
    const msgs: LwsMessage[] = [
      { type: 'LWS_OPEN_REQ', requestId: 1, sessionId: 'pd-1', baseMarkerSeq: 4, members: [{ volumeId: 'vol-1', seedSnapshotId: 'snap-9' }], sourceLogId: '0123456789abcdef' },
      { type: 'LWS_OPEN_RES', requestId: 1, durableSeq: 12 },
      batch,
      { type: 'LWS_BATCH_ACK', batchId: 7, durableSeq: 6 },
    ];
    expect(msgs.map((m) => FRAME_TYPE[m.type])).toEqual([40, 41, 42, 43]);
    for (const m of msgs) expect(decodeMessage(frame(m))).toEqual(m);
  });

  it('the decoder refuses decreasing sequence numbers, unknown kinds and codecs, and lying lengths (PROTOCOL_ERROR)', () => {
    const bytes = concat(encodeLwsMessage(batch));
    const mutate = (f: (b: Uint8Array, dv: DataView) => void) => {
      const b = bytes.slice();
      f(b, new DataView(b.buffer));
      return () => decodeLwsMessage('LWS_BATCH', b);
    };
    const header = 4 + 1 + 4 + 4; // batchId, session id length + 'pd-1', count
    const writeAt = header; // kind u8, seq u64, volume id (1 + 5), byteOffset u64, checksum u64, codec u8, rawLength u32, dataLength u32
    const codecAt = writeAt + 1 + 8 + 6 + 8 + 8;
    const markerAt = writeAt + 1 + 8 + 6 + 8 + 8 + 1 + 4 + 4 + 3;
    expect(() => decodeLwsMessage('LWS_BATCH', bytes)).not.toThrow();
    expect(mutate((_, dv) => dv.setBigUint64(markerAt + 1, 5n))).toThrow(expect.objectContaining({ code: 'PROTOCOL_ERROR' })); // seq not increasing
    expect(mutate((b) => (b[markerAt] = 9))).toThrow(expect.objectContaining({ code: 'PROTOCOL_ERROR' })); // unknown kind
    expect(mutate((b) => (b[codecAt] = 7))).toThrow(expect.objectContaining({ code: 'PROTOCOL_ERROR' })); // unknown codec
    expect(mutate((_, dv) => dv.setUint32(codecAt + 1 + 4, 4))).toThrow(expect.objectContaining({ code: 'PROTOCOL_ERROR' })); // raw dataLength != rawLength
    expect(mutate((_, dv) => dv.setUint32(9, 5000))).toThrow(expect.objectContaining({ code: 'PROTOCOL_ERROR' })); // count over the bound
    expect(() => decodeLwsMessage('LWS_BATCH', bytes.subarray(0, bytes.length - 2))).toThrow(expect.objectContaining({ code: 'PROTOCOL_ERROR' }));
    expect(() => decodeLwsMessage('LWS_OPEN_RES', new Uint8Array(13))).toThrow(expect.objectContaining({ code: 'PROTOCOL_ERROR' }));
  });

  it('the encoder refuses what the decoder would (INVALID_ARGUMENT, nothing sent)', () => {
    const bad = (m: LwsMessage) => expect(() => encodeLwsMessage(m)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    bad({ ...batch, records: [] } as LwsMessage);
    bad({ ...batch, records: [batch.type === 'LWS_BATCH' ? batch.records[1]! : (undefined as never), batch.type === 'LWS_BATCH' ? batch.records[0]! : (undefined as never)] } as LwsMessage);
    bad({ type: 'LWS_OPEN_REQ', requestId: 1, sessionId: 'pd-1', baseMarkerSeq: 4, members: [], sourceLogId: 'x' });
    bad({ type: 'LWS_OPEN_REQ', requestId: 1, sessionId: 'pd-1', baseMarkerSeq: 4, members: [{ volumeId: 'v', seedSnapshotId: 's' }], sourceLogId: '' });
    bad({ type: 'LWS_BATCH_ACK', batchId: -1, durableSeq: 1 });
  });
});
