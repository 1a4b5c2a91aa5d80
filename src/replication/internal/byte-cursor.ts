/**
 * Bounds-checked big-endian reading of binary message payloads. Every read checks the
 * remaining length first, so a lying count or length yields PROTOCOL_ERROR, never an
 * out-of-bounds view or a large allocation.
 */
import { DrkitError } from '../../core/errors.js';

/** Reads a payload front to back. */
export class ByteCursor {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #what: string;
  #at = 0;

  /** @param what message name, for error messages */
  constructor(bytes: Uint8Array, what: string) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#what = what;
  }

  /** Bytes not yet read. */
  get remainingBytes(): number {
    return this.#bytes.length - this.#at;
  }

  /** @throws PROTOCOL_ERROR unless `byteCount` more bytes are present */
  need(byteCount: number, field: string): void {
    if (byteCount > this.remainingBytes) {
      throw new DrkitError('PROTOCOL_ERROR', `${this.#what}: truncated at ${field} (needs ${byteCount} bytes, ${this.remainingBytes} left)`, {
        data: { message: this.#what, field, byteOffset: this.#at, neededBytes: byteCount, remainingBytes: this.remainingBytes },
      });
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.#view.getUint8(this.#at++);
  }

  u16(field: string): number {
    this.need(2, field);
    const v = this.#view.getUint16(this.#at);
    this.#at += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.#view.getUint32(this.#at);
    this.#at += 4;
    return v;
  }

  /** A u64 as a bigint (checksums). */
  u64(field: string): bigint {
    this.need(8, field);
    const v = this.#view.getBigUint64(this.#at);
    this.#at += 8;
    return v;
  }

  /** A u64 that must be a safe integer (block indexes, cursors). @throws PROTOCOL_ERROR above 2^53 - 1 */
  safeU64(field: string): number {
    const v = this.u64(field);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${field} ${v} exceeds 2^53 - 1`, { field });
    return Number(v);
  }

  /** A view of the next `byteCount` bytes (no copy: the payload is owned by the frame). */
  bytes(byteCount: number, field: string): Uint8Array {
    this.need(byteCount, field);
    const out = this.#bytes.subarray(this.#at, this.#at + byteCount);
    this.#at += byteCount;
    return out;
  }

  /** @throws PROTOCOL_ERROR when bytes are left over */
  end(): void {
    if (this.remainingBytes !== 0) this.fail(`${this.remainingBytes} trailing bytes`, { remainingBytes: this.remainingBytes });
  }

  /** @throws PROTOCOL_ERROR always */
  fail(message: string, data: Record<string, unknown> = {}): never {
    throw new DrkitError('PROTOCOL_ERROR', `${this.#what}: ${message}`, { data: { message: this.#what, byteOffset: this.#at, ...data } });
  }
}

/** Writes big-endian fields into a buffer sized in advance. */
export class ByteWriter {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  #at = 0;

  constructor(byteLength: number) {
    this.bytes = new Uint8Array(byteLength);
    this.#view = new DataView(this.bytes.buffer);
  }

  u8(v: number): this {
    this.#view.setUint8(this.#at, v);
    this.#at += 1;
    return this;
  }

  u16(v: number): this {
    this.#view.setUint16(this.#at, v);
    this.#at += 2;
    return this;
  }

  u32(v: number): this {
    this.#view.setUint32(this.#at, v);
    this.#at += 4;
    return this;
  }

  u64(v: bigint | number): this {
    this.#view.setBigUint64(this.#at, BigInt(v));
    this.#at += 8;
    return this;
  }

  raw(bytes: Uint8Array): this {
    this.bytes.set(bytes, this.#at);
    this.#at += bytes.length;
    return this;
  }
}
