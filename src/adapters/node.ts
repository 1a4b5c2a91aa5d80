/**
 * drkit/adapters/node: adapters that need Node.js (files, raw devices).
 * @packageDocumentation
 */
export { RawFileBlockDevice, type RawFileBlockDeviceOptions } from './raw-file-block-device.js';
export { FileMetaStore, type FileMetaStoreOptions } from './file-meta-store.js';
export { TcpTransport, type TcpTransportOptions } from './tcp-transport.js';
export { TlsTransport, type TlsTransportOptions, type Pem } from './tls-transport.js';
export {
  LmdbMetaStore,
  LMDB_META_STORE_MAX_KEY_BYTES,
  type LmdbMetaStoreOptions,
  type LmdbMetaStoreStats,
} from './lmdb-meta-store.js';
