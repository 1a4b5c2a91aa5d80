// The default fingerprint is SHA-256 exactly (FIPS 180-2 test vectors): sites compare
// fingerprints across versions and machines, so the one-shot fast path must not drift.
import { describe, expect, it } from 'vitest';
import { sha256Fingerprinter } from '../../src/dedup/index.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('sha256Fingerprinter', () => {
  it('matches the SHA-256 test vectors', () => {
    expect(hex(sha256Fingerprinter.fingerprint(new TextEncoder().encode('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(hex(sha256Fingerprinter.fingerprint(new Uint8Array(0)))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    const million = new Uint8Array(1_000_000).fill(0x61); // one million 'a'
    expect(hex(sha256Fingerprinter.fingerprint(million))).toBe('cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0');
  });

  it('hands out fingerprints that later calls do not overwrite', () => {
    const a = sha256Fingerprinter.fingerprint(new Uint8Array([1]));
    const copy = a.slice();
    for (let i = 0; i < 5000; i++) sha256Fingerprinter.fingerprint(new Uint8Array([i & 0xff, i >> 8])); // crosses slab boundaries
    expect(a).toEqual(copy);
  });
});
