/**
 * Encoding of a LogMetaStore generation's snapshot: the live set as SNAPSHOT records of
 * at most {@link SNAPSHOT_CHUNK_BYTES} payload each, then one SNAPSHOT_END record that
 * carries the entry count and live bytes, so recovery can prove the snapshot complete.
 */
import type { Xxh64 } from '../../core/checksum.js';
import { RECORD_HEADER_BYTES, RecordType, writeRecordHeader, type RecordTypeCode } from './log-format.js';
import type { AlignedAppender } from './aligned-appender.js';
import { OP_OVERHEAD_BYTES } from './meta-batch.js';

/** Payload bytes per snapshot record: big enough to amortise headers, small enough to verify cheaply. */
const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** SNAPSHOT_END payload: entryCount u64, liveBytes u64. */
const SNAPSHOT_END_PAYLOAD_BYTES = 16;

type Entries = () => Iterable<[string, Uint8Array]>;

/** Splits the entries into chunks the way {@link writeSnapshot} does, yielding each chunk's payload bytes and entries. */
function* chunks(entries: Entries): Generator<{ payloadBytes: number; entries: [string, Uint8Array][] }> {
  let chunk: [string, Uint8Array][] = [];
  let payloadBytes = 4;
  for (const entry of entries()) {
    const entryBytes = OP_OVERHEAD_BYTES + entry[0].length + entry[1].length;
    if (chunk.length > 0 && payloadBytes + entryBytes > SNAPSHOT_CHUNK_BYTES) {
      yield { payloadBytes, entries: chunk };
      chunk = [];
      payloadBytes = 4;
    }
    chunk.push(entry);
    payloadBytes += entryBytes;
  }
  if (chunk.length > 0) yield { payloadBytes, entries: chunk };
}

/** Bytes the snapshot of `entries` occupies in the log (records only, before alignment padding). */
export function snapshotByteLength(entries: Entries): number {
  let total = RECORD_HEADER_BYTES + SNAPSHOT_END_PAYLOAD_BYTES;
  for (const chunk of chunks(entries)) total += RECORD_HEADER_BYTES + chunk.payloadBytes;
  return total;
}

/** Appends the snapshot records of `entries`; returns the seq after the last one. */
export async function writeSnapshot(
  xxh: Xxh64,
  appender: AlignedAppender,
  entries: Entries,
  fields: { epoch: number; firstSeq: number; entryCount: number; liveBytes: number },
): Promise<number> {
  let seq = fields.firstSeq;
  const emit = async (type: RecordTypeCode, record: Uint8Array): Promise<void> => {
    const payloadChecksum = xxh.hash(record.subarray(RECORD_HEADER_BYTES));
    const payloadByteLength = record.length - RECORD_HEADER_BYTES;
    // flushedSeq 0: snapshot records are always sealed, so recovery never needs it.
    writeRecordHeader(xxh, record, 0, { type, payloadByteLength, epoch: fields.epoch, seq: seq++, flushedSeq: 0, payloadChecksum });
    await appender.append(record);
  };
  for (const chunk of chunks(entries)) {
    const record = new Uint8Array(RECORD_HEADER_BYTES + chunk.payloadBytes);
    const view = new DataView(record.buffer);
    view.setUint32(RECORD_HEADER_BYTES, chunk.entries.length, true);
    let at = RECORD_HEADER_BYTES + 4;
    for (const [key, value] of chunk.entries) {
      view.setUint8(at, 1);
      view.setUint32(at + 1, key.length, true);
      view.setUint32(at + 5, value.length, true);
      at += OP_OVERHEAD_BYTES;
      for (let i = 0; i < key.length; i++) record[at + i] = key.charCodeAt(i);
      at += key.length;
      record.set(value, at);
      at += value.length;
    }
    await emit(RecordType.SNAPSHOT, record);
  }
  const end = new Uint8Array(RECORD_HEADER_BYTES + SNAPSHOT_END_PAYLOAD_BYTES);
  const endView = new DataView(end.buffer);
  endView.setBigUint64(RECORD_HEADER_BYTES, BigInt(fields.entryCount), true);
  endView.setBigUint64(RECORD_HEADER_BYTES + 8, BigInt(fields.liveBytes), true);
  await emit(RecordType.SNAPSHOT_END, end);
  return seq;
}
