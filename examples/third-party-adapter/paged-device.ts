// A third party's block device: 4 KiB pages in a Map, written the way a drkit user
// would write an adapter — it only does I/O; guardBlockDevice() adds argument
// validation, NOT_OPEN after close, concurrency bounds and error mapping.
import type { BlockDevice, BlockRead, BlockWrite } from 'drkit/adapters';
import { guardBlockDevice, type GuardedBlockDevice } from 'drkit/adapters';

const PAGE_BYTES = 4096;

class PagedDevice implements BlockDevice {
  readonly capabilities = Object.freeze({
    durableFlush: false,
    discard: true,
    resizable: false,
    alignmentBytes: 1,
    atomicWriteBytes: 1,
    maxConcurrency: 8,
  });
  readonly #pages = new Map<number, Uint8Array>();

  constructor(readonly byteLength: number) {}

  async read(byteOffset: number, byteLength: number): Promise<Uint8Array> {
    const out = new Uint8Array(byteLength);
    for (let done = 0; done < byteLength; ) {
      const at = byteOffset + done;
      const page = Math.floor(at / PAGE_BYTES);
      const inPage = at % PAGE_BYTES;
      const n = Math.min(PAGE_BYTES - inPage, byteLength - done);
      const bytes = this.#pages.get(page);
      if (bytes) out.set(bytes.subarray(inPage, inPage + n), done);
      done += n;
    }
    return out;
  }

  async readv(reads: readonly BlockRead[]): Promise<Uint8Array[]> {
    return Promise.all(reads.map((r) => this.read(r.byteOffset, r.byteLength)));
  }

  async write(byteOffset: number, data: Uint8Array): Promise<void> {
    for (let done = 0; done < data.length; ) {
      const at = byteOffset + done;
      const page = Math.floor(at / PAGE_BYTES);
      const inPage = at % PAGE_BYTES;
      const n = Math.min(PAGE_BYTES - inPage, data.length - done);
      let bytes = this.#pages.get(page);
      if (!bytes) this.#pages.set(page, (bytes = new Uint8Array(PAGE_BYTES)));
      bytes.set(data.subarray(done, done + n), inPage);
      done += n;
    }
  }

  async writev(writes: readonly BlockWrite[]): Promise<void> {
    for (const w of writes) await this.write(w.byteOffset, w.data);
  }

  async discard(byteOffset: number, byteLength: number): Promise<void> {
    await this.write(byteOffset, new Uint8Array(byteLength));
  }

  async flush(): Promise<void> {}

  async resize(): Promise<void> {
    throw new Error('PagedDevice cannot resize'); // the guard refuses first: resizable is false
  }

  async close(): Promise<void> {
    this.#pages.clear();
  }
}

/** Opens a guarded PagedDevice of `byteLength` bytes. */
export async function openPagedDevice(byteLength: number): Promise<GuardedBlockDevice> {
  return guardBlockDevice(new PagedDevice(byteLength));
}
