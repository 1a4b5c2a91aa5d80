/**
 * drkit/dedup: content fingerprints and checksums.
 * @packageDocumentation
 */
export { sha256Fingerprinter, type Fingerprinter } from './fingerprint.js';
export { loadXxh64, type Xxh64 } from '../core/checksum.js';
