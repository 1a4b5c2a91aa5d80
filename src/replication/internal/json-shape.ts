/**
 * Small validators for the JSON payloads of control messages. Each returns a fresh
 * value holding only known fields (so nothing a peer adds — `__proto__`, extra keys —
 * travels further) and throws PROTOCOL_ERROR naming the offending field.
 */
import { DrkitError } from '../../core/errors.js';

/**
 * Largest JSON payload of a control message: 256 KiB. BEGIN_REQ carries a snapshot's
 * userMetadata, which the snapshot layer bounds at 64 Ki JSON characters (up to 192 KiB
 * of UTF-8); the rest is room for the other fields. Every other control message is far smaller.
 */
export const MAX_CONTROL_PAYLOAD_BYTES = 256 * 1024;

/** Longest identifier (site, volume key, session, snapshot, group ids): 128 UTF-8 bytes — ids are keys, not payloads. */
export const MAX_ID_BYTES = 128;

/** Longest free text (error messages, abort reasons): 1024 characters — enough to explain, too small to carry data. */
export const MAX_TEXT_CHARS = 1024;

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Throws PROTOCOL_ERROR for `what`.`path`. */
export function shapeError(what: string, path: string, problem: string): never {
  throw new DrkitError('PROTOCOL_ERROR', `${what}: ${path} ${problem}`, { data: { message: what, field: path } });
}

/** UTF-8 byte length of `text`. */
export function utf8ByteLength(text: string): number {
  return utf8Encoder.encode(text).length;
}

/**
 * An identifier: 1..MAX_ID_BYTES UTF-8 bytes, no control characters, well-formed UTF-16
 * (ids enter HMAC inputs and binary fields as UTF-8, which must round-trip).
 * @throws PROTOCOL_ERROR
 */
export function checkId(value: unknown, what: string, path: string): string {
  if (typeof value !== 'string' || value.length === 0) shapeError(what, path, 'must be a non-empty string');
  if (value.length > MAX_ID_BYTES || utf8ByteLength(value) > MAX_ID_BYTES) shapeError(what, path, `exceeds ${MAX_ID_BYTES} UTF-8 bytes`);
  if (CONTROL_CHARS.test(value) || LONE_SURROGATE.test(value)) shapeError(what, path, 'contains control characters or lone surrogates');
  return value;
}

/**
 * Decodes a control payload: bounded, strict UTF-8, JSON, a plain object at the top.
 * @throws PROTOCOL_ERROR
 */
export function parseJsonPayload(payload: Uint8Array, what: string): Fields {
  if (payload.length > MAX_CONTROL_PAYLOAD_BYTES) shapeError(what, 'payload', `of ${payload.length} bytes exceeds ${MAX_CONTROL_PAYLOAD_BYTES}`);
  let value: unknown;
  try {
    value = JSON.parse(utf8Decoder.decode(payload));
  } catch (err) {
    throw new DrkitError('PROTOCOL_ERROR', `${what}: payload is not UTF-8 JSON`, { cause: err, data: { message: what } });
  }
  return new Fields(value, what, '');
}

/** Typed, bounded access to the fields of one JSON object. */
export class Fields {
  readonly #object: Record<string, unknown>;
  readonly #what: string;
  readonly #path: string;

  constructor(value: unknown, what: string, path: string) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) shapeError(what, path || 'payload', 'must be a JSON object');
    this.#object = value as Record<string, unknown>;
    this.#what = what;
    this.#path = path;
  }

  #at(key: string): string {
    return this.#path === '' ? key : `${this.#path}.${key}`;
  }

  #get(key: string): unknown {
    return Object.prototype.hasOwnProperty.call(this.#object, key) ? this.#object[key] : undefined;
  }

  has(key: string): boolean {
    return this.#get(key) !== undefined;
  }

  /** An identifier: see {@link checkId}. */
  id(key: string): string {
    return checkId(this.#get(key), this.#what, this.#at(key));
  }

  optionalId(key: string): string | undefined {
    return this.has(key) ? this.id(key) : undefined;
  }

  /** A string of `minChars`..`maxChars` UTF-16 units. */
  text(key: string, minChars: number, maxChars: number): string {
    const v = this.#get(key);
    if (typeof v !== 'string' || v.length < minChars || v.length > maxChars) shapeError(this.#what, this.#at(key), `must be a string of ${minChars}-${maxChars} characters`);
    return v;
  }

  /** An integer in [min, max] (both safe). */
  integer(key: string, min: number, max: number): number {
    const v = this.#get(key);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) shapeError(this.#what, this.#at(key), `must be an integer in [${min}, ${max}]`);
    return v;
  }

  /** A boolean. */
  boolean(key: string): boolean {
    const v = this.#get(key);
    if (typeof v !== 'boolean') shapeError(this.#what, this.#at(key), 'must be a boolean');
    return v;
  }

  /** A literal from `allowed`. */
  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const v = this.#get(key);
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) shapeError(this.#what, this.#at(key), `must be one of ${allowed.join(', ')}`);
    return v as T;
  }

  /** Lower-case hex of exactly `byteLength` bytes, decoded. */
  hexBytes(key: string, byteLength: number): Uint8Array {
    const v = this.#get(key);
    if (typeof v !== 'string' || v.length !== byteLength * 2 || !/^[0-9a-f]*$/.test(v)) shapeError(this.#what, this.#at(key), `must be ${byteLength * 2} lower-case hex digits`);
    const out = new Uint8Array(byteLength);
    for (let i = 0; i < byteLength; i++) out[i] = parseInt(v.slice(i * 2, i * 2 + 2), 16);
    return out;
  }

  optionalHexBytes(key: string, byteLength: number): Uint8Array | undefined {
    return this.has(key) ? this.hexBytes(key, byteLength) : undefined;
  }

  /** A nested object. */
  object(key: string): Fields {
    return new Fields(this.#get(key), this.#what, this.#at(key));
  }

  optionalObject(key: string): Fields | undefined {
    return this.has(key) ? this.object(key) : undefined;
  }

  /** An array of at most `maxItems` elements, each mapped by `item`. */
  array<T>(key: string, maxItems: number, item: (value: unknown, path: string) => T): T[] {
    const v = this.#get(key);
    const path = this.#at(key);
    if (!Array.isArray(v)) shapeError(this.#what, path, 'must be an array');
    if (v.length > maxItems) shapeError(this.#what, path, `has ${v.length} items, more than ${maxItems}`);
    return v.map((element, i) => item(element, `${path}[${i}]`));
  }

  /** An object whose values are all strings (user metadata); bounded by the payload bound. */
  stringRecord(key: string): Record<string, string> {
    const v = this.#get(key);
    const path = this.#at(key);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) shapeError(this.#what, path, 'must be an object of strings');
    const out: Record<string, string> = {};
    for (const [k, value] of Object.entries(v)) {
      if (typeof value !== 'string') shapeError(this.#what, `${path}.${k}`, 'must be a string');
      Object.defineProperty(out, k, { value, enumerable: true, writable: true, configurable: true });
    }
    return out;
  }

  /** The message name, for validators of nested values. */
  get what(): string {
    return this.#what;
  }
}
