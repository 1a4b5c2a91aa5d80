import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadXxh64 } from '../../src/core/checksum.js';
import { isDrkitError } from '../../src/core/errors.js';
import { encodeBinaryMessage, decodeBinaryMessage, splitExtentsForFrames, MAX_HAVE_FINGERPRINTS, MAX_BLOCK_ENTRIES, EXTENT_ENTRY_HEADER_BYTES } from '../../src/replication/internal/binary-messages.js';
import { decodeControlMessage, encodeControlMessage, MAX_LIST_SNAPSHOTS } from '../../src/replication/internal/control-messages.js';
import { FRAME_TYPE, MAX_FRAME_PAYLOAD_BYTES, decodeFrame, encodeFrame } from '../../src/replication/internal/frame-codec.js';
import { MAX_CONTROL_PAYLOAD_BYTES } from '../../src/replication/internal/json-shape.js';
import { decodeMessage, encodeMessage, errorFromPeer, type Message } from '../../src/replication/internal/messages.js';
import { utf8 } from '../../src/core/bytes.js';
import { arbMessage } from './protocol-helpers.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (isDrkitError(err)) return err.code;
    throw err;
  }
  return undefined;
}

describe('protocol messages', () => {
  it('every message round-trips through a frame', async () => {
    const xxh64 = await loadXxh64();
    fc.assert(
      fc.property(arbMessage, fc.integer({ min: 0, max: 0xffff_ffff }), (message, seq) => {
        const frame = encodeFrame(xxh64, { type: FRAME_TYPE[message.type], seq, parts: encodeMessage(message) });
        const decoded = decodeMessage(decodeFrame(xxh64, frame, seq));
        expect(decoded).toEqual(message);
      }),
      { numRuns: 2000 },
    );
  });

  it('rejects what it would not accept, before sending (INVALID_ARGUMENT)', () => {
    const bad: Message[] = [
      { type: 'HELLO', version: 1, siteId: '', nonce: new Uint8Array(32) },
      { type: 'HELLO', version: 1, siteId: 'a\nb', nonce: new Uint8Array(32) },
      { type: 'HELLO', version: 1, siteId: 'x'.repeat(129), nonce: new Uint8Array(32) },
      { type: 'HELLO', version: 1, siteId: 'a', nonce: new Uint8Array(31) },
      { type: 'LIST_REQ', requestId: -1, volumeKey: 'v' },
      { type: 'LIST_REQ', requestId: 2 ** 32, volumeKey: 'v' },
      { type: 'COMMIT_REQ', requestId: 1, sessionIds: [] },
      { type: 'HAVE_REQ', requestId: 1, fingerprints: [new Uint8Array(20)] },
      { type: 'HAVE_REQ', requestId: 1, fingerprints: Array.from({ length: MAX_HAVE_FINGERPRINTS + 1 }, () => new Uint8Array(32)) },
      { type: 'EXTENTS', batchId: 1, extents: [] },
      { type: 'EXTENTS', batchId: 1, extents: [{ fingerprint: new Uint8Array(32), checksum: 0n, codec: 0, rawLength: 3, data: new Uint8Array(2) }] },
      { type: 'EXTENTS', batchId: 1, extents: [{ fingerprint: new Uint8Array(32), checksum: 0n, codec: 1, rawLength: 3, data: new Uint8Array(4) }] },
      { type: 'EXTENTS', batchId: 1, extents: [{ fingerprint: new Uint8Array(32), checksum: 0n, codec: 7, rawLength: 3, data: new Uint8Array(3) }] },
      { type: 'BLOCKS', batchId: 1, sessionId: 's', cursorAfter: 5, blocks: [{ blockIndex: 5, fingerprint: undefined }] },
      { type: 'BLOCKS', batchId: 1, sessionId: 's', cursorAfter: 9, blocks: [{ blockIndex: 3, fingerprint: undefined }, { blockIndex: 3, fingerprint: undefined }] },
      { type: 'BLOCKS', batchId: 1, sessionId: 's', cursorAfter: 2 ** 60, blocks: [] },
      { type: 'BEGIN_REQ', requestId: 1, sessionId: 's', volumeKey: 'v', originSiteId: 'a', originSnapshotId: 'b', originVolumeId: 'c', byteLength: 10, blockBytes: 3000, snapshot: { name: 'n', createdMs: 0, consistency: 'crash', userMetadata: {} } },
      { type: 'BEGIN_REQ', requestId: 1, sessionId: 's', volumeKey: 'v', originSiteId: 'a', originSnapshotId: 'b', originVolumeId: 'c', byteLength: 10, blockBytes: 4096, snapshot: { name: 'n', createdMs: 0, consistency: 'crash', userMetadata: { big: 'x'.repeat(MAX_CONTROL_PAYLOAD_BYTES) } } },
      { type: 'LIST_RES', requestId: 1, snapshots: Array.from({ length: MAX_LIST_SNAPSHOTS + 1 }, (_, i) => ({ originSiteId: 'a', originSnapshotId: `s${i}`, snapshotId: `t${i}`, createdMs: i })) },
    ];
    for (const message of bad) expect(code(() => encodeMessage(message)), JSON.stringify(message.type)).toBe('INVALID_ARGUMENT');
  });

  it('decoders reject lying counts and lengths with PROTOCOL_ERROR, before allocating', () => {
    const u32s = (...values: number[]) => {
      const out = new Uint8Array(values.length * 4);
      values.forEach((v, i) => new DataView(out.buffer).setUint32(i * 4, v));
      return out;
    };
    expect(code(() => decodeBinaryMessage('HAVE_REQ', u32s(1, 0xffff_ffff)))).toBe('PROTOCOL_ERROR');
    expect(code(() => decodeBinaryMessage('HAVE_REQ', u32s(1, MAX_HAVE_FINGERPRINTS)))).toBe('PROTOCOL_ERROR');
    expect(code(() => decodeBinaryMessage('HAVE_RES', u32s(1, 9, 0x0200_0000)))).toBe('PROTOCOL_ERROR'); // padding bit set
    expect(code(() => decodeBinaryMessage('EXTENTS', u32s(1, 0xffff_ffff)))).toBe('PROTOCOL_ERROR');
    expect(code(() => decodeBinaryMessage('EXTENTS_ACK', u32s(1, 2)))).toBe('PROTOCOL_ERROR'); // trailing bytes
    const extent = encodeBinaryMessage({ type: 'EXTENTS', batchId: 1, extents: [{ fingerprint: new Uint8Array(32), checksum: 5n, codec: 0, rawLength: 4, data: new Uint8Array(4) }] });
    const payload = Uint8Array.from(extent.flatMap((p) => [...p]));
    new DataView(payload.buffer).setUint32(8 + 32 + 8 + 1, 0xffff_ffff); // rawLength lie
    expect(code(() => decodeBinaryMessage('EXTENTS', payload))).toBe('PROTOCOL_ERROR');
    const blocks = Uint8Array.from(encodeBinaryMessage({ type: 'BLOCKS', batchId: 1, sessionId: 's', cursorAfter: 10, blocks: [] }).flatMap((p) => [...p]));
    new DataView(blocks.buffer).setUint32(blocks.length - 4, MAX_BLOCK_ENTRIES + 1);
    expect(code(() => decodeBinaryMessage('BLOCKS', blocks))).toBe('PROTOCOL_ERROR');
    expect(code(() => decodeControlMessage('HELLO', utf8('{"version":1,"siteId":"a","nonce":"00"}')))).toBe('PROTOCOL_ERROR');
    expect(code(() => decodeControlMessage('HELLO', Uint8Array.of(0xff, 0xfe)))).toBe('PROTOCOL_ERROR');
    expect(code(() => decodeControlMessage('WELCOME', utf8('[]')))).toBe('PROTOCOL_ERROR');
    expect(code(() => decodeControlMessage('WELCOME', new Uint8Array(MAX_CONTROL_PAYLOAD_BYTES + 1)))).toBe('PROTOCOL_ERROR');
    expect(code(() => decodeControlMessage('LIST_REQ', utf8('{"requestId":1,"volumeKey":"v","__proto__":{"x":1}}')))).toBeUndefined();
  });

  it('decoded messages carry only known fields', () => {
    const decoded = decodeControlMessage('LIST_REQ', utf8('{"requestId":1,"volumeKey":"v","extra":true,"__proto__":{"polluted":1}}'));
    expect(decoded).toEqual({ type: 'LIST_REQ', requestId: 1, volumeKey: 'v' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const meta = decodeControlMessage(
      'BEGIN_REQ',
      utf8(JSON.stringify({ requestId: 1, sessionId: 's', volumeKey: 'v', originSiteId: 'a', originSnapshotId: 'b', originVolumeId: 'c', byteLength: 0, blockBytes: 4096, snapshot: { name: 'n', createdMs: 0, consistency: 'crash', userMetadata: JSON.parse('{"__proto__":"x"}') } })),
    );
    expect(meta.type === 'BEGIN_REQ' && Object.getPrototypeOf(meta.snapshot.userMetadata)).toBe(Object.prototype);
  });

  it('splitExtentsForFrames keeps order and fits every batch in one frame', () => {
    const big = (n: number) => ({ fingerprint: new Uint8Array(32), checksum: 0n, codec: 0, rawLength: n, data: new Uint8Array(n) });
    const extents = [big(4 << 20), big(3 << 20), big(2 << 20), big(1), big(4 << 20)];
    const batches = splitExtentsForFrames(extents);
    expect(batches.flat()).toEqual(extents);
    for (const b of batches) {
      const parts = encodeMessage({ type: 'EXTENTS', batchId: 0, extents: b });
      expect(parts.reduce((n, p) => n + p.length, 0)).toBeLessThanOrEqual(MAX_FRAME_PAYLOAD_BYTES);
    }
    expect(batches.map((b) => b.length)).toEqual([2, 3]);
    expect(EXTENT_ENTRY_HEADER_BYTES).toBe(49);
  });

  it('errorFromPeer keeps known codes and maps unknown ones to PROTOCOL_ERROR', () => {
    expect(errorFromPeer({ type: 'ERROR', code: 'AUTH_FAILED', message: 'no' }).code).toBe('AUTH_FAILED');
    expect(errorFromPeer({ type: 'ERROR', code: 'FROM_THE_FUTURE', message: 'x' }).code).toBe('PROTOCOL_ERROR');
    expect(errorFromPeer({ type: 'ERROR', code: 'TIMEOUT', message: 'x' }).data.fromPeer).toBe(true);
  });

  it('control payloads are JSON a human can read', () => {
    const payload = encodeControlMessage({ type: 'ABORT', sessionId: 's1', reason: 'cancelled' });
    expect(new TextDecoder().decode(payload)).toBe('{"sessionId":"s1","reason":"cancelled"}');
  });
});
