/**
 * A man in the middle for tests: a TCP proxy that understands drkit frames well enough to
 * rewrite them the way an active attacker without the key could — it fixes up sequence
 * numbers and xxh64 checksums after every change, so only frame authentication can
 * notice. It speaks TcpTransport's record layer (a u32 length per write, a zero-length
 * record at a clean close; one drkit frame per record). It tampers with the client-to-server direction once, at the first frame that
 * `match` selects, and records the ERROR codes the server sends back.
 */
import net from 'node:net';
import type { Xxh64 } from '../../src/core/checksum.js';
import { FRAME_CHECKSUM_BYTES, FRAME_FLAG_MAC, FRAME_HEADER_BYTES, FRAME_TYPE } from '../../src/replication/internal/frame-codec.js';
import { FRAME_MAC_BYTES } from '../../src/replication/internal/frame-mac.js';

/** What the relay does to the selected frame. */
export type Tamper =
  | { kind: 'none' }
  /** Flips bit `mask` of payload byte `at` (a negative `at` counts from the payload's end). */
  | { kind: 'flip'; at: (payload: Buffer) => number; mask: number }
  /** Sends, instead of the selected frame, the frame before it again, renumbered as the selected one. */
  | { kind: 'replay' }
  /** Sends the selected frame after the next one, both renumbered to look in order. */
  | { kind: 'swap' }
  /** Sends a forged frame (this type and payload, a random tag) before the selected one; later frames are renumbered. */
  | { kind: 'inject'; type: number; payload: Uint8Array }
  /** Removes the selected frame's tag and clears its MAC flag. */
  | { kind: 'strip-tag' }
  /** Forwards the first half of the selected frame as if it were whole, then closes both sides cleanly. */
  | { kind: 'truncate' };

/** A running relay. */
export interface TamperingRelay {
  /** "127.0.0.1:port" to connect to instead of the server. */
  readonly address: string;
  /** Codes of the ERROR frames the server sent back (decoded from their JSON). */
  readonly serverErrors: string[];
  /** True once the selected frame was tampered with (the test asserts the attack happened). */
  readonly tampered: () => boolean;
  close(): Promise<void>;
}

const RECORD_HEADER_BYTES = 4;
/** TcpTransport's clean-close record. */
const END_RECORD = Buffer.alloc(RECORD_HEADER_BYTES);

/** The payloads of TcpTransport records (drkit frames), as they complete; an empty one is the end record. */
class RecordSplitter {
  #buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    const records: Buffer[] = [];
    for (;;) {
      if (this.#buffer.length < RECORD_HEADER_BYTES) break;
      const total = RECORD_HEADER_BYTES + this.#buffer.readUInt32BE(0);
      if (this.#buffer.length < total) break;
      records.push(Buffer.from(this.#buffer.subarray(RECORD_HEADER_BYTES, total)));
      this.#buffer = this.#buffer.subarray(total);
    }
    return records;
  }
}

function record(payload: Buffer): Buffer {
  const header = Buffer.alloc(RECORD_HEADER_BYTES);
  header.writeUInt32BE(payload.length, 0);
  return Buffer.concat([header, payload]);
}

function reseal(xxh64: Xxh64, frame: Buffer, seq: number): Buffer {
  const out = Buffer.from(frame);
  out.writeUInt32BE(seq, 6);
  const body = out.length - FRAME_CHECKSUM_BYTES;
  out.writeBigUInt64BE(xxh64.hash(out.subarray(0, body)), body);
  return out;
}

function payloadOf(frame: Buffer): Buffer {
  return frame.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + frame.readUInt32BE(10));
}

/** A forged frame: `type`, `payload`, a random tag, a valid checksum. */
function forge(xxh64: Xxh64, type: number, payload: Uint8Array, seq: number): Buffer {
  const out = Buffer.alloc(FRAME_HEADER_BYTES + payload.length + FRAME_MAC_BYTES + FRAME_CHECKSUM_BYTES);
  out.write('DK', 0, 'latin1');
  out[2] = 2;
  out[3] = type;
  out[4] = FRAME_FLAG_MAC;
  out.writeUInt32BE(payload.length, 10);
  out.set(payload, FRAME_HEADER_BYTES);
  for (let i = 0; i < FRAME_MAC_BYTES; i++) out[FRAME_HEADER_BYTES + payload.length + i] = (i * 37 + 11) & 0xff;
  return reseal(xxh64, out, seq);
}

/**
 * Starts a relay on 127.0.0.1 in front of `target` ("host:port").
 * @param match selects the frame to tamper with (its type and payload)
 */
export async function startTamperingRelay(xxh64: Xxh64, target: string, tamper: Tamper, match: (type: number, payload: Buffer) => boolean): Promise<TamperingRelay> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const serverErrors: string[] = [];
  let done = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    sockets.add(client);
    sockets.add(upstream);
    const up = new RecordSplitter();
    const down = new RecordSplitter();
    let shift = 0; // how far the relay's numbering has moved from the client's
    let previous: Buffer | undefined;
    let held: Buffer | undefined; // a frame withheld for a swap
    const send = (frame: Buffer, seq: number) => upstream.write(record(reseal(xxh64, frame, seq)));
    client.on('data', (chunk: Buffer) => {
      for (const frame of up.push(chunk)) {
        if (frame.length === 0) {
          upstream.write(END_RECORD);
          continue;
        }
        const seq = frame.readUInt32BE(6) + shift;
        if (held !== undefined) {
          send(frame, seq - 1);
          send(held, seq);
          held = undefined;
          previous = frame;
          continue;
        }
        if (!done && match(frame[3]!, payloadOf(frame))) {
          done = true;
          switch (tamper.kind) {
            case 'none':
              send(frame, seq);
              break;
            case 'flip': {
              const copy = Buffer.from(frame);
              const payload = payloadOf(copy);
              const at = tamper.at(payload);
              payload[at < 0 ? payload.length + at : at]! ^= tamper.mask;
              send(copy, seq);
              break;
            }
            case 'replay':
              send(previous!, seq);
              break;
            case 'swap':
              held = frame;
              break;
            case 'inject':
              upstream.write(record(forge(xxh64, tamper.type, tamper.payload, seq)));
              shift++;
              send(frame, seq + 1);
              break;
            case 'strip-tag': {
              const length = frame.readUInt32BE(10);
              const stripped = Buffer.concat([frame.subarray(0, FRAME_HEADER_BYTES + length), Buffer.alloc(FRAME_CHECKSUM_BYTES)]);
              stripped[4] = stripped[4]! & ~FRAME_FLAG_MAC;
              send(stripped, seq);
              break;
            }
            case 'truncate':
              upstream.end(Buffer.concat([record(frame.subarray(0, frame.length >> 1)), END_RECORD]));
              client.end(END_RECORD);
              return;
          }
          previous = frame;
          continue;
        }
        send(frame, seq);
        previous = frame;
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      for (const frame of down.push(chunk)) {
        if (frame.length > 0 && frame[3] === FRAME_TYPE.ERROR) serverErrors.push((JSON.parse(payloadOf(frame).toString('utf8')) as { code: string }).code);
        client.write(record(frame));
      }
    });
    const finish = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', finish);
    upstream.on('close', finish);
    client.on('error', finish);
    upstream.on('error', finish);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    address,
    serverErrors,
    tampered: () => done,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
