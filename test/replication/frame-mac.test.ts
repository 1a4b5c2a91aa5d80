// Frame authentication (protocol v2) at the codec: each check of verifyFrameMac and of
// FrameMac alone, with a frame whose xxh64 and sequence number are right, so only the
// check under test can refuse it.
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { loadXxh64 } from '../../src/core/checksum.js';
import { isDrkitError, type DrkitError } from '../../src/core/errors.js';
import { FRAME_CHECKSUM_BYTES, FRAME_FLAG_MAC, FRAME_HEADER_BYTES, FRAME_TYPE, MAC_FRAME_OVERHEAD_BYTES, decodeFrame, encodeFrame } from '../../src/replication/internal/frame-codec.js';
import { FRAME_MAC_BYTES, FrameMac, deriveFrameKeys } from '../../src/replication/internal/frame-mac.js';

const xxh64 = await loadXxh64();
const nc = new Uint8Array(randomBytes(32));
const ns = new Uint8Array(randomBytes(32));
const psk = new Uint8Array(32).fill(9);
const keys = deriveFrameKeys(psk, 2, nc, ns, 'A', 'B');

function failure(f: () => unknown): DrkitError {
  try {
    f();
  } catch (err) {
    if (isDrkitError(err)) return err;
    throw err;
  }
  throw new Error('expected a DrkitError');
}

function seal(frame: Uint8Array): Uint8Array {
  const body = frame.length - FRAME_CHECKSUM_BYTES;
  new DataView(frame.buffer, frame.byteOffset).setBigUint64(body, xxh64.hash(frame.subarray(0, body)));
  return frame;
}

const frameOf = (mac: FrameMac | undefined, seq: number, payload: Uint8Array) => encodeFrame(xxh64, { type: FRAME_TYPE.EXTENTS_ACK, seq, parts: [payload.subarray(0, 2), payload.subarray(2)] }, mac);

describe('frame authentication', () => {
  it('round-trips tagged frames in order, a tag over parts equal to one over the whole payload', () => {
    const send = new FrameMac(keys.clientToServer);
    const receive = new FrameMac(keys.clientToServer);
    for (let seq = 0; seq < 5; seq++) {
      const payload = Uint8Array.of(seq, 1, 2, 3);
      const bytes = frameOf(send, seq, payload);
      expect(bytes.length).toBe(payload.length + MAC_FRAME_OVERHEAD_BYTES);
      expect(bytes[4]).toBe(FRAME_FLAG_MAC);
      expect(decodeFrame(xxh64, bytes, seq, receive).payload).toEqual(payload);
    }
  });

  it('refuses a re-checksummed change of any header or payload byte (AUTH_FAILED, reason frame-mac)', () => {
    const bytes = frameOf(new FrameMac(keys.clientToServer), 0, Uint8Array.of(4, 5, 6, 7));
    // type (3) and every payload byte; the tag covers the header too
    for (const at of [3, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + 3]) {
      const copy = bytes.slice();
      copy[at] = at === 3 ? FRAME_TYPE.BLOCKS_ACK : copy[at]! ^ 1;
      const err = failure(() => decodeFrame(xxh64, seal(copy), 0, new FrameMac(keys.clientToServer)));
      expect([err.code, err.data.reason]).toEqual(['AUTH_FAILED', 'frame-mac']);
    }
  });

  it('refuses a frame replayed under a rewritten sequence number: the key counts frames', () => {
    const send = new FrameMac(keys.clientToServer);
    const first = frameOf(send, 0, Uint8Array.of(1, 1, 1));
    const receive = new FrameMac(keys.clientToServer);
    decodeFrame(xxh64, first, 0, receive);
    const replay = first.slice();
    new DataView(replay.buffer).setUint32(6, 1);
    expect(failure(() => decodeFrame(xxh64, seal(replay), 1, receive)).code).toBe('AUTH_FAILED');
  });

  it('keys differ per direction and per connection (reflection and cross-session replay fail)', () => {
    const bytes = frameOf(new FrameMac(keys.clientToServer), 0, Uint8Array.of(1, 2, 3));
    expect(failure(() => decodeFrame(xxh64, bytes, 0, new FrameMac(keys.serverToClient))).code).toBe('AUTH_FAILED');
    const otherConnection = deriveFrameKeys(psk, 2, nc, new Uint8Array(randomBytes(32)), 'A', 'B');
    expect(failure(() => decodeFrame(xxh64, bytes, 0, new FrameMac(otherConnection.clientToServer))).code).toBe('AUTH_FAILED');
    const otherSites = deriveFrameKeys(psk, 2, nc, ns, 'A', 'C');
    expect(otherSites.clientToServer).not.toEqual(keys.clientToServer);
  });

  it('refuses a frame without a tag on a keyed direction (reason frame-mac-missing)', () => {
    const untagged = frameOf(undefined, 0, Uint8Array.of(1, 2, 3));
    const err = failure(() => decodeFrame(xxh64, untagged, 0, new FrameMac(keys.clientToServer)));
    expect([err.code, err.data.reason]).toEqual(['AUTH_FAILED', 'frame-mac-missing']);
  });

  it('refuses a tagged frame on a direction without keys (PROTOCOL_ERROR), and a hand-set MAC flag', () => {
    const tagged = frameOf(new FrameMac(keys.clientToServer), 0, Uint8Array.of(1, 2, 3));
    expect(failure(() => decodeFrame(xxh64, tagged, 0)).code).toBe('PROTOCOL_ERROR');
    expect(failure(() => encodeFrame(xxh64, { type: FRAME_TYPE.EXTENTS_ACK, seq: 0, flags: FRAME_FLAG_MAC, parts: [] })).code).toBe('INVALID_ARGUMENT');
    expect(FRAME_MAC_BYTES).toBe(16);
  });
});
