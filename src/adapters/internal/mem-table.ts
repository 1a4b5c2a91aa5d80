/**
 * The in-memory live set shared by the MetaStore implementations: an {@link OrderedMap}
 * of binary-string keys to value bytes, with byte accounting and snapshot iteration.
 * Values are copied on the way in and on the way out, so callers can neither mutate
 * stored bytes nor see later changes through a returned array.
 */
import { bytesToKey, keyToBytes } from '../../core/bytes.js';
import { throwIfAborted } from '../../core/errors.js';
import { assertBytes } from '../../core/validate.js';
import type { IoOptions } from '../block-device.js';
import type { MetaOp, MetaRange } from '../meta-store.js';
import { normalizeRange } from './meta-range.js';
import { OrderedMap } from './ordered-map.js';

/** A key-value table in memory. */
export class MemTable {
  private readonly map = new OrderedMap<Uint8Array>();
  private live = 0;

  /** Live keys. */
  get keyCount(): number {
    return this.map.size;
  }

  /** Bytes of live keys + values. */
  get liveBytes(): number {
    return this.live;
  }

  /** The value at `key` (a copy), or undefined. @throws INVALID_ARGUMENT */
  get(key: Uint8Array): Uint8Array | undefined {
    assertBytes(key, 'key');
    return this.map.get(bytesToKey(key))?.slice();
  }

  /** Byte length of the value at a binary-string key ({@link bytesToKey}), or undefined (no copy, no check). */
  valueBytes(key: string): number | undefined {
    return this.map.get(key)?.length;
  }

  /** Applies validated `ops` in order. `owned` values are stored without copying. */
  apply(ops: readonly MetaOp[], owned = false): void {
    for (const op of ops) this.applyOne(op.kind, bytesToKey(op.key), op.kind === 'put' ? (owned ? op.value : op.value.slice()) : undefined);
  }

  /** Applies one op to a binary-string key (`value` undefined = delete). The value is stored as is. */
  applyOne(kind: 'put' | 'del', key: string, value: Uint8Array | undefined): void {
    if (kind === 'put') {
      const previous = this.map.set(key, value!);
      this.live += previous === undefined ? key.length + value!.length : value!.length - previous.length;
    } else {
      const previous = this.map.delete(key);
      if (previous !== undefined) this.live -= key.length + previous.length;
    }
  }

  /** Removes every entry. */
  clear(): void {
    this.map.clear();
    this.live = 0;
  }

  /**
   * Freezes the current contents (O(1)) and returns a function that iterates them, in key
   * order and as stored (no copies), as often as needed: log compaction walks it twice.
   */
  freeze(): () => Generator<[string, Uint8Array]> {
    const view = this.map.snapshot();
    return () => this.map.entries({}, view);
  }

  /**
   * Entries within `range` as of this call (the snapshot is taken immediately, not at the
   * first `next()`). Argument errors, `assertOpen` failures and aborts reject the first
   * `next()` that meets them.
   */
  iterate(range: MetaRange | undefined, options: IoOptions | undefined, assertOpen: () => void): AsyncIterable<[Uint8Array, Uint8Array]> {
    let setupError: unknown;
    let view: ReturnType<OrderedMap<Uint8Array>['snapshot']> | undefined;
    let normalized: ReturnType<typeof normalizeRange> | undefined;
    try {
      assertOpen();
      normalized = normalizeRange(range);
      view = this.map.snapshot();
    } catch (err) {
      setupError = err;
    }
    const map = this.map;
    const signal = options?.signal;
    return {
      async *[Symbol.asyncIterator]() {
        if (setupError !== undefined) throw setupError;
        if (normalized!.empty) return;
        let yielded = 0;
        for (const [key, value] of map.entries(normalized!.keyRange, view)) {
          if (yielded >= normalized!.limit) return;
          assertOpen();
          throwIfAborted(signal);
          yielded++;
          yield [keyToBytes(key), value.slice()];
        }
      },
    };
  }
}
