/**
 * drkit/local: a whole site on one directory (Node only): extents on a raw file, metadata
 * in LMDB, the write log on by default, a SnapshotTree and a replication Site, opened and
 * closed with one call each.
 * @packageDocumentation
 */
export { LocalSite, DEFAULT_WRITE_LOG_BYTES, MIN_WRITE_LOG_BYTES, type LocalSiteOptions } from './local-site.js';
export { MARKER_FILE, LAYOUT_VERSION, LAYOUT_FILES, type SiteMarker } from './internal/site-marker.js';
export { copyDevice, DEFAULT_COPY_CHUNK_BYTES, type CopyDeviceOptions, type CopyProgress } from './copy-device.js';
