/**
 * The ExtentStore contract: immutable extents keyed by fingerprint.
 *
 * Integrity promise: every extent is stored with its xxh64 checksum and every read
 * verifies it; a mismatch rejects with `CORRUPTION`, never with wrong bytes. A store that
 * keeps extents compressed at rest (an {@link ExtentPut.stored} form) keeps two checksums,
 * of the stored form and of the content: a read verifies the stored form before decoding
 * it and the content after, and {@link ExtentStore.getStored} serves the stored form
 * verified, without decoding it.
 * Durability promise: extents put (and deletes) are durable once a later `flush()`
 * resolves. After a crash, every extent whose put was flushed reads back identical,
 * and an extent that reads back at all reads back correct.
 *
 * The store does not count references: deciding when an extent is garbage is the
 * snapshot layer's job.
 */
import type { IoOptions } from './block-device.js';
import type { MetaOp, MetaStore } from './meta-store.js';

/** One extent to store. */
export interface ExtentPut {
  /** The extent's identity (e.g. a SHA-256 digest); 1-64 bytes. */
  readonly fingerprint: Uint8Array;
  /** The extent's bytes. */
  readonly data: Uint8Array;
  /** The sender's xxh64 of `data`; when given it is verified before writing (`CORRUPTION` on mismatch). */
  readonly checksum?: bigint;
  /**
   * The extent as it arrived, encoded (e.g. zstd); a store with a decoder may keep this
   * form instead of `data` (compression at rest). The caller vouches that it decodes to
   * `data` (a replication receiver decoded it to verify the fingerprint); every later read
   * verifies the decoded content against `data`'s checksum. Ignored by stores that keep
   * content only, and when it is not smaller than `data`.
   */
  readonly stored?: StoredForm;
  /**
   * The caller tried to compress `data` and it did not pay (a replication receiver that
   * got it raw): a store that compresses at rest may remember it, so that `getStored`
   * says so and a sender ships it raw without trying again.
   */
  readonly incompressible?: boolean;
}

/** Options of {@link ExtentStore.getStored}. */
export interface StoredReadOptions extends IoOptions {
  /**
   * Optional space for the stored bytes: a store may read them into consecutive ranges
   * of it (a buffer the caller reuses, so a bulk reader allocates nothing per extent)
   * and return views of it; what does not fit, or a store that does not do this, gets
   * buffers of its own. The caller must not reuse `into` while it still needs the views.
   */
  readonly into?: Uint8Array;
  /**
   * The caller reads each extent about once (a transfer streaming a snapshot): the store
   * may leave what it looks up for this call out of its caches, which a 1 GiB transfer
   * would otherwise fill with entries nobody asks for again (heap the garbage collector
   * then carries). Entries already cached are still used. @defaultValue false
   */
  readonly bulk?: boolean;
}

/** An extent's encoded form: the codec id (not 0) and the encoded bytes. */
export interface StoredForm {
  /** Codec id (see drkit/dedup: 1 = lz4, 2 = zstd); 0 (raw) is never stored as a form. */
  readonly codec: number;
  readonly bytes: Uint8Array;
}

/** An extent as a store keeps it: see {@link ExtentStore.getStored}. */
export interface StoredExtent {
  /** 0 when `bytes` is the content itself, else the codec id of an encoded form. */
  readonly codec: number;
  /** The stored bytes, verified against the stored form's checksum. */
  readonly bytes: Uint8Array;
  /** Content length. */
  readonly rawLength: number;
  /** xxh64 of the content (not re-computed: checked when the extent was put). */
  readonly checksum: bigint;
  /** Codec 0 only: compressing it was tried and did not pay (see {@link ExtentPut.incompressible}). */
  readonly incompressible?: boolean;
}

/**
 * Decodes a stored form back to content; `ExtentCodec` from drkit/dedup is one (the store
 * cannot import it: adapters sit below dedup).
 */
export interface ExtentDecoder {
  /** The content of `bytes` encoded with `codec`, exactly `rawLength` bytes. @throws CORRUPTION for a malformed form */
  decompress(codec: number, bytes: Uint8Array, rawLength: number): Uint8Array;
}

/** What the store knows of one extent, without reading its data. */
export interface ExtentInfo {
  readonly fingerprint: Uint8Array;
  readonly byteLength: number;
  readonly checksum: bigint;
}

/** Counters a store reports. */
export interface ExtentStoreStats {
  readonly extentCount: number;
  /** Sum of extent lengths. */
  readonly extentBytes: number;
  /** Bytes occupied on the medium including allocator overhead. */
  readonly storedBytes: number;
  /** Bytes of freed space available for reuse (0 where not applicable). */
  readonly freeBytes: number;
}

/** Declared capabilities. */
export interface ExtentStoreCapabilities {
  /** `flush()` makes puts survive power loss. */
  readonly durableFlush: boolean;
  /** Largest extent accepted, in bytes. */
  readonly maxExtentBytes: number;
}

/**
 * Index changes an ExtentStore hands to a caller that commits them in its own durable
 * MetaStore batch (see {@link ExtentStore.prepareCommit}). The store is locked until one
 * of the two calls is made.
 */
export interface PreparedExtentCommit {
  /** Ops to include, unchanged, in one durable batch of the MetaStore given to `prepareCommit`. */
  readonly ops: readonly MetaOp[];
  /** The batch holding `ops` is durable: the store applies them and unlocks. */
  committed(): void;
  /** The batch failed or was not made: nothing changes, the store unlocks. */
  abandoned(): void;
}

/** Fingerprint-addressed storage of immutable extents. */
export interface ExtentStore {
  readonly capabilities: ExtentStoreCapabilities;
  /**
   * Stores extents; a fingerprint already present is skipped (content addressing). The
   * store copies what it keeps: once the call settles, the caller may reuse every buffer
   * it passed (`fingerprint`, `data`, `stored.bytes`), as a replication receiver reuses
   * its frames and decode buffers.
   */
  put(extents: readonly ExtentPut[], options?: IoOptions): Promise<void>;
  /** The extent's bytes, verified. @throws EXTENT_NOT_FOUND, CORRUPTION */
  get(fingerprint: Uint8Array, options?: IoOptions): Promise<Uint8Array>;
  /** Several extents, verified, in request order. @throws EXTENT_NOT_FOUND, CORRUPTION */
  getMany(fingerprints: readonly Uint8Array[], options?: IoOptions): Promise<Uint8Array[]>;
  /**
   * Optional. Extents in the form they are stored (compressed or not), the stored form
   * verified by its checksum, not decoded: what a replication sender or a serving site
   * ships as is. @throws EXTENT_NOT_FOUND, CORRUPTION
   */
  getStored?(fingerprints: readonly Uint8Array[], options?: StoredReadOptions): Promise<StoredExtent[]>;
  /** Which fingerprints are stored, in request order (the have-query). */
  has(fingerprints: readonly Uint8Array[], options?: IoOptions): Promise<boolean[]>;
  /** Removes extents; absent fingerprints are ignored. Their space is reused once the delete is durable. */
  delete(fingerprints: readonly Uint8Array[], options?: IoOptions): Promise<void>;
  /** Every stored extent, in fingerprint order. */
  list(options?: IoOptions): AsyncIterable<ExtentInfo>;
  /** Counters. */
  stats(): Promise<ExtentStoreStats>;
  /** Durability barrier for every put/delete that resolved before the call. */
  flush(options?: IoOptions): Promise<void>;
  /**
   * Optional. Like `flush()`, but instead of committing its index changes itself the store
   * makes the extent bytes durable and returns the changes as ops for the caller's own
   * durable batch in `meta` — one sync instead of two when the caller shares the store's
   * MetaStore. Resolves to undefined when `meta` is not the store's MetaStore (then call
   * `flush()`).
   */
  prepareCommit?(meta: MetaStore, options?: IoOptions): Promise<PreparedExtentCommit | undefined>;
  /** Releases resources. Idempotent. */
  close(): Promise<void>;
}
