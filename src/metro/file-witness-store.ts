/**
 * FileWitnessStore: the witness's lease state in one JSON file (the `drkit witness
 * --state FILE` of a third host).
 *
 * Durability promise: `save()` writes a temporary file beside the target, fsyncs it,
 * renames it over the target and fsyncs the directory, so after a crash the file holds
 * either the previous state or the new one, never a mix; `load()` of a missing file is the
 * empty state, of an unreadable one CORRUPTION (a witness never starts from a guess).
 */
import fs from 'node:fs/promises';
import { dirname } from 'node:path';
import { DrkitError } from '../core/errors.js';
import type { PairLease, WitnessStore } from './witness.js';

/** Format version written in the file. */
const FILE_FORMAT = 1;

/** A {@link WitnessStore} in one file. */
export class FileWitnessStore implements WitnessStore {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  /** @throws CORRUPTION (unparsable file or entries), FORMAT_VERSION, IO_ERROR */
  async load(): Promise<Record<string, PairLease>> {
    let text: string;
    try {
      text = await fs.readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new DrkitError('IO_ERROR', `cannot read witness state ${this.path}`, { cause: err });
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new DrkitError('CORRUPTION', `witness state ${this.path} is not JSON`, { cause: err });
    }
    const doc = raw as { format?: unknown; pairs?: unknown };
    if (doc.format !== FILE_FORMAT) throw new DrkitError('FORMAT_VERSION', `witness state ${this.path} has format ${String(doc.format)}, not ${FILE_FORMAT}`);
    if (typeof doc.pairs !== 'object' || doc.pairs === null) throw new DrkitError('CORRUPTION', `witness state ${this.path} has no pairs`);
    const out: Record<string, PairLease> = {};
    for (const [pairId, v] of Object.entries(doc.pairs as Record<string, unknown>)) {
      const e = v as { holder?: unknown; term?: unknown; outdated?: unknown };
      const okId = (x: unknown): boolean => x === null || (typeof x === 'string' && x.length > 0 && x.length <= 128);
      if (!Number.isSafeInteger(e.term) || (e.term as number) < 0 || !okId(e.holder) || !okId(e.outdated)) throw new DrkitError('CORRUPTION', `witness state ${this.path}: malformed entry for ${pairId}`);
      out[pairId] = { holder: (e.holder as string | null) ?? undefined, term: e.term as number, outdated: (e.outdated as string | null) ?? undefined };
    }
    return out;
  }

  /** @throws IO_ERROR */
  async save(state: Record<string, PairLease>): Promise<void> {
    const pairs = Object.fromEntries(Object.entries(state).map(([id, l]) => [id, { holder: l.holder ?? null, term: l.term, outdated: l.outdated ?? null }]));
    const tmp = `${this.path}.tmp`;
    try {
      const handle = await fs.open(tmp, 'w');
      try {
        await handle.writeFile(JSON.stringify({ format: FILE_FORMAT, pairs }));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(tmp, this.path);
      const dir = await fs.open(dirname(this.path), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch (err) {
      throw new DrkitError('IO_ERROR', `cannot write witness state ${this.path}`, { cause: err });
    }
  }
}
