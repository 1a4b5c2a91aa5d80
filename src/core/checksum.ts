/**
 * Fast checksums (xxh64 from xxhash-wasm). Used on every extent read and write, on
 * every metadata log record and on every wire frame. Not collision-resistant: identity
 * of content is the fingerprint's job (see drkit/dedup), integrity is this one's.
 */
import xxhash from 'xxhash-wasm';

/** A loaded xxh64 implementation. */
export interface Xxh64 {
  /** The 64-bit xxh64 of `bytes` (seed 0). */
  hash(bytes: Uint8Array): bigint;
  /** An incremental hasher, for data that arrives in pieces. */
  create(): { update(bytes: Uint8Array): void; digest(): bigint };
}

let loading: Promise<Xxh64> | undefined;

/**
 * Loads (once per process) and returns the xxh64 implementation. Adapters call it in
 * their `open()`, after which hashing is synchronous.
 */
export function loadXxh64(): Promise<Xxh64> {
  loading ??= xxhash().then((api) => {
    const impl: Xxh64 = {
      hash: (bytes) => api.h64Raw(bytes),
      create: () => {
        const h = api.create64();
        return {
          update(bytes: Uint8Array) {
            h.update(bytes);
          },
          digest: () => h.digest(),
        };
      },
    };
    return impl;
  });
  return loading;
}
