/**
 * The verifier of a SnapshotTree: recomputes every reference count from the live roots
 * and compares it with what is stored; finds dangling and leaked nodes and extents;
 * optionally reads every referenced extent back (checksum) and re-fingerprints it.
 * It reports problems as coded results and changes nothing.
 */
import { bytesToKey, keyToBytes, toHex, equalBytes } from '../core/bytes.js';
import { isDrkitError } from '../core/errors.js';
import type { ExtentStore } from '../adapters/extent-store.js';
import type { MetaStore } from '../adapters/meta-store.js';
import type { Fingerprinter } from '../dedup/fingerprint.js';
import { decodeCount, TAG, type TreeKeys } from './internal/keys.js';
import type { MapStore } from './internal/map-store.js';

/** Kinds of problem the verifier reports. */
export type VerifyProblemCode =
  | 'NODE_REFCOUNT_MISMATCH'
  | 'EXTENT_REFCOUNT_MISMATCH'
  | 'DANGLING_NODE'
  | 'LEAKED_NODE'
  | 'DANGLING_EXTENT'
  | 'LEAKED_EXTENT'
  | 'CORRUPT_EXTENT'
  | 'FINGERPRINT_MISMATCH';

/** One problem found. */
export interface VerifyProblem {
  readonly code: VerifyProblemCode;
  readonly message: string;
  readonly nodeId?: number;
  /** Hex fingerprint. */
  readonly fingerprint?: string;
  readonly expected?: number;
  readonly actual?: number;
}

/** Options of `SnapshotTree.verify`. */
export interface VerifyOptions {
  /** Read every referenced extent (verifying its checksum) and re-fingerprint it. @defaultValue false */
  readData?: boolean;
}

/** What the verifier found. `ok` is true when `problems` is empty. */
export interface VerifyReport {
  readonly ok: boolean;
  readonly problems: readonly VerifyProblem[];
  readonly nodesChecked: number;
  readonly extentsChecked: number;
}

/** @internal inputs of the verifier, supplied by SnapshotTree under its mutex after a commit */
export interface VerifyInputs {
  meta: MetaStore;
  extents: ExtentStore;
  keys: TreeKeys;
  map: MapStore;
  fingerprinter: Fingerprinter;
  roots: { owner: string; root: number; blockCount: number }[];
  freeNodes: Set<number>;
  deadExtents: Set<string>;
  options: VerifyOptions;
}

/** @internal */
export async function verifyTree(input: VerifyInputs): Promise<VerifyReport> {
  const { meta, keys, map, extents } = input;
  const problems: VerifyProblem[] = [];
  const nodeRefs = new Map<number, number>();
  const extentRefs = new Map<string, number>();
  const visited = new Set<number>();
  const addRef = (id: number) => nodeRefs.set(id, (nodeRefs.get(id) ?? 0) + 1);

  const visit = async (id: number): Promise<void> => {
    if (visited.has(id)) return;
    visited.add(id);
    let node;
    try {
      node = await map.node(id);
    } catch (err) {
      if (isDrkitError(err, 'CORRUPTION')) {
        problems.push({ code: 'DANGLING_NODE', message: `node ${id} is referenced but unreadable: ${(err as Error).message}`, nodeId: id });
        return;
      }
      throw err;
    }
    if (node.kind === 'leaf') {
      for (const fp of node.slots) if (fp !== undefined) extentRefs.set(bytesToKey(fp), (extentRefs.get(bytesToKey(fp)) ?? 0) + 1);
      return;
    }
    for (const child of node.slots) {
      if (child === 0) continue;
      addRef(child);
      await visit(child);
    }
  };
  for (const r of input.roots) {
    if (r.root === 0) continue;
    addRef(r.root);
    await visit(r.root);
  }
  // Nodes awaiting reclamation still hold their references until reclaimed.
  for (const id of input.freeNodes) await visit(id);

  for (const id of visited) {
    const expected = nodeRefs.get(id) ?? 0;
    const actual = await map.nodeRc(id);
    if (expected !== actual) {
      problems.push({ code: 'NODE_REFCOUNT_MISMATCH', message: `node ${id}: rc ${actual}, ${expected} references`, nodeId: id, expected, actual });
    }
  }
  for await (const [key, value] of meta.iterate({ prefix: keys.tagPrefix(TAG.node) })) {
    const id = keys.idOf(key);
    if (!visited.has(id)) problems.push({ code: 'LEAKED_NODE', message: `node ${id} (${value.length} bytes) is stored but unreachable`, nodeId: id });
  }

  const storedExtentRc = new Map<string, number>();
  for await (const [key, value] of meta.iterate({ prefix: keys.tagPrefix(TAG.extentRc) })) {
    storedExtentRc.set(bytesToKey(keys.tail(key)), decodeCount(value));
  }
  for (const [key, expected] of extentRefs) {
    const actual = storedExtentRc.get(key) ?? 0;
    if (actual !== expected) {
      problems.push({ code: 'EXTENT_REFCOUNT_MISMATCH', message: `extent rc ${actual}, ${expected} references`, fingerprint: toHex(keyToBytes(key)), expected, actual });
    }
  }
  for (const [key, actual] of storedExtentRc) {
    if (!extentRefs.has(key)) {
      problems.push({ code: 'EXTENT_REFCOUNT_MISMATCH', message: `extent rc ${actual}, 0 references`, fingerprint: toHex(keyToBytes(key)), expected: 0, actual });
    }
  }

  const referenced = [...extentRefs.keys()].map(keyToBytes);
  const HAS_BATCH = 1024; // bounds one have-query
  for (let i = 0; i < referenced.length; i += HAS_BATCH) {
    const slice = referenced.slice(i, i + HAS_BATCH);
    const present = await extents.has(slice);
    slice.forEach((fp, j) => {
      if (!present[j]) problems.push({ code: 'DANGLING_EXTENT', message: 'a block references a missing extent', fingerprint: toHex(fp) });
    });
  }
  for await (const info of extents.list()) {
    const key = bytesToKey(info.fingerprint);
    if (!extentRefs.has(key) && !input.deadExtents.has(key)) {
      problems.push({ code: 'LEAKED_EXTENT', message: `extent of ${info.byteLength} bytes is stored but unreferenced`, fingerprint: toHex(info.fingerprint) });
    }
  }

  if (input.options.readData === true) {
    for (const fp of referenced) {
      try {
        const data = await extents.get(fp);
        if (!equalBytes(input.fingerprinter.fingerprint(data), fp)) {
          problems.push({ code: 'FINGERPRINT_MISMATCH', message: 'extent content does not match its fingerprint', fingerprint: toHex(fp) });
        }
      } catch (err) {
        if (isDrkitError(err, 'CORRUPTION')) problems.push({ code: 'CORRUPT_EXTENT', message: (err as Error).message, fingerprint: toHex(fp) });
        else if (!isDrkitError(err, 'EXTENT_NOT_FOUND')) throw err;
      }
    }
  }
  return { ok: problems.length === 0, problems, nodesChecked: visited.size, extentsChecked: referenced.length };
}
