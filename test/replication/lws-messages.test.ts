// NearSync messages (types 40-43): round trips through frames, and every bound of the
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

describe('NearSync messages', () => {
  it('round-trip through frames with their numbers 40-43', () => {
    const msgs: LwsMessage[] = [
      { type: 'LWS_OPEN_REQ', requestId: 1, sessionId: 'pd-1', baseMarkerSeq: 4, members: [{ volumeId: 'vol-1', seedSnapshotId: 'snap-9' }] },
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
    bad({ type: 'LWS_OPEN_REQ', requestId: 1, sessionId: 'pd-1', baseMarkerSeq: 4, members: [] });
    bad({ type: 'LWS_BATCH_ACK', batchId: -1, durableSeq: 1 });
  });
});
