/**
 * The record layer under TcpTransport and TlsTransport: each `write()` goes out as a
 * 4-byte big-endian length followed by its bytes, and `close()` sends a zero-length
 * record before the FIN. Why: a peer can then tell a clean close from a crash or a
 * `destroy()`. TCP cannot: a crashed process's kernel sends a FIN, and on Linux libuv
 * reports an RST that arrives right behind data as a plain end of stream (measured:
 * one read of the data, then 'end', no ECONNRESET). An end without the end record is
 * CONNECTION_LOST. The decoder never allocates from a received length: payloads are
 * handed on as views of the received chunks, so a hostile length cannot exhaust memory.
 */
import { DrkitError } from '../../core/errors.js';

/** Bytes of a record header. */
export const RECORD_HEADER_BYTES = 4;
/** Largest record payload: the header's u32 range. */
export const MAX_RECORD_BYTES = 0xffff_ffff;
/** The end-of-stream record. */
export const END_RECORD = new Uint8Array(RECORD_HEADER_BYTES);

/** The header of a record of `byteLength` payload bytes (1..MAX_RECORD_BYTES). */
export function recordHeader(byteLength: number): Uint8Array {
  const header = new Uint8Array(RECORD_HEADER_BYTES);
  new DataView(header.buffer).setUint32(0, byteLength, false);
  return header;
}

/** Splits received bytes into payload views and the end record. */
export class RecordDecoder {
  /** Payload bytes of the current record still to come. */
  #remaining = 0;
  /** Header bytes of the next record seen so far. */
  readonly #header = new Uint8Array(RECORD_HEADER_BYTES);
  #headerFill = 0;
  #ended = false;

  /** True once the end record arrived. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Feeds received bytes; calls `onPayload` with views of them, in order.
   * @throws PROTOCOL_ERROR for bytes after the end record
   */
  feed(chunk: Uint8Array, onPayload: (payload: Uint8Array) => void): void {
    let pos = 0;
    while (pos < chunk.byteLength) {
      if (this.#ended) {
        throw new DrkitError('PROTOCOL_ERROR', 'bytes after the end-of-stream record', { data: { extraBytes: chunk.byteLength - pos } });
      }
      if (this.#remaining > 0) {
        const n = Math.min(this.#remaining, chunk.byteLength - pos);
        onPayload(pos === 0 && n === chunk.byteLength ? chunk : chunk.subarray(pos, pos + n));
        this.#remaining -= n;
        pos += n;
        continue;
      }
      const n = Math.min(RECORD_HEADER_BYTES - this.#headerFill, chunk.byteLength - pos);
      this.#header.set(chunk.subarray(pos, pos + n), this.#headerFill);
      this.#headerFill += n;
      pos += n;
      if (this.#headerFill === RECORD_HEADER_BYTES) {
        this.#headerFill = 0;
        this.#remaining = new DataView(this.#header.buffer).getUint32(0, false);
        if (this.#remaining === 0) this.#ended = true;
      }
    }
  }
}
