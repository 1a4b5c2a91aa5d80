/**
 * Fingerprints: the identity of an extent's content. The default is SHA-256 from
 * node:crypto because a collision across sites would make one site silently serve
 * another's bytes; a fast checksum (xxh64) guards integrity separately.
 */
import { createHash } from 'node:crypto';
import { assertBytes } from '../core/validate.js';

/** A pluggable content fingerprint function. */
export interface Fingerprinter {
  /** Algorithm name, recorded in formats so that sites can refuse a mismatch. */
  readonly algorithm: string;
  /** Digest length in bytes (1-64). */
  readonly digestBytes: number;
  /** The fingerprint of `data`. */
  fingerprint(data: Uint8Array): Uint8Array;
}

/** SHA-256 fingerprints (32 bytes), the default. */
export const sha256Fingerprinter: Fingerprinter = Object.freeze({
  algorithm: 'sha256',
  digestBytes: 32,
  fingerprint(data: Uint8Array): Uint8Array {
    assertBytes(data, 'data');
    const digest = createHash('sha256').update(data).digest();
    return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
  },
});
