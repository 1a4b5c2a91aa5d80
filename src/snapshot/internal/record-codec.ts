/** Encoding, validation and public views of SnapshotTree records. */
import { utf8 } from '../../core/bytes.js';
import { DrkitError } from '../../core/errors.js';
import { RECORD_FORMAT_VERSION, type SnapshotInfo, type SnapshotRecord, type VolumeInfo, type VolumeRecord } from '../records.js';

export function encodeJson(value: unknown): Uint8Array {
  return utf8(JSON.stringify(value));
}

export function decodeJson<T extends { formatVersion: number }>(bytes: Uint8Array, what: string): T {
  let value: T;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as T;
  } catch (err) {
    throw new DrkitError('CORRUPTION', `${what} is not valid JSON`, { cause: err });
  }
  if (value?.formatVersion !== RECORD_FORMAT_VERSION) {
    throw new DrkitError('FORMAT_VERSION', `${what} has format version ${String(value?.formatVersion)}`, { data: { what } });
  }
  return value;
}

export function seqOf(id: string): number {
  return Number(id.slice(id.lastIndexOf('-') + 1));
}

export function validateName(name: unknown): asserts name is string {
  const MAX_NAME_CHARS = 256; // names are labels, not payloads
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_CHARS) {
    throw new DrkitError('INVALID_ARGUMENT', `name must be a string of 1-${MAX_NAME_CHARS} characters`, { data: { name: String(name) } });
  }
}

export function validateUserMetadata(meta: Record<string, string> | undefined): Readonly<Record<string, string>> {
  if (meta === undefined) return Object.freeze({});
  const MAX_METADATA_BYTES = 64 * 1024; // snapshot records are read in full at open
  if (typeof meta !== 'object' || meta === null || Object.values(meta).some((v) => typeof v !== 'string')) {
    throw new DrkitError('INVALID_ARGUMENT', 'userMetadata must map strings to strings');
  }
  if (JSON.stringify(meta).length > MAX_METADATA_BYTES) {
    throw new DrkitError('INVALID_ARGUMENT', `userMetadata exceeds ${MAX_METADATA_BYTES} bytes`);
  }
  return Object.freeze({ ...meta });
}

export function snapshotInfo(r: SnapshotRecord): SnapshotInfo {
  const { formatVersion: _v, root: _r, ...info } = r;
  return Object.freeze({ ...info, userMetadata: Object.freeze({ ...info.userMetadata }) });
}

export function volumeInfo(r: VolumeRecord): VolumeInfo {
  return Object.freeze({ id: r.id, name: r.name, byteLength: r.byteLength, blockBytes: r.blockBytes, parentSnapshotId: r.parentSnapshotId, createdMs: r.createdMs });
}

