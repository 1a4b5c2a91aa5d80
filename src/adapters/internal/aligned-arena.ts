/**
 * Page-aligned staging memory for O_DIRECT writes, which Linux refuses (EINVAL) unless the
 * buffer address, the file offset and the length are multiples of the device's logical
 * block size. JavaScript cannot read an ArrayBuffer's address, so over-allocating and
 * slicing cannot find the aligned point; a `WebAssembly.Memory` is the one allocation
 * whose base V8 places on an OS page boundary (it reserves wasm memories with mmap at
 * page granularity). Views at multiples of {@link ARENA_ALIGNMENT_BYTES} from its start
 * are therefore aligned. Should a platform place it elsewhere, the direct write fails
 * with EINVAL, which the raw-file device reports as a coded error (never a silent loss).
 * Cost: the slabs' bytes once touched, plus address space (not memory) that V8 reserves
 * around each wasm memory as guard regions; hence one arena per device, not one per slab.
 */

/** Alignment of the arena's slabs: the x86-64 and arm64 page size, a multiple of every logical block size up to 4 KiB. */
export const ARENA_ALIGNMENT_BYTES = 4096;
/** The one WebAssembly API used (the project's lib settings carry no WebAssembly values). */
declare const WebAssembly: { Memory: new (descriptor: { initial: number; maximum: number }) => { readonly buffer: ArrayBuffer } };

/** WebAssembly's page: the arena's allocation unit. */
const WASM_PAGE_BYTES = 64 * 1024;

/** A fixed set of equal, page-aligned slabs carved from one WebAssembly.Memory. */
export class AlignedArena {
  readonly #buffer: ArrayBuffer;
  readonly #free: Uint8Array[] = [];
  readonly slabBytes: number;
  readonly slabCount: number;

  /** @param slabBytes a multiple of {@link ARENA_ALIGNMENT_BYTES} */
  constructor(slabBytes: number, slabCount: number) {
    const pages = Math.ceil((slabBytes * slabCount) / WASM_PAGE_BYTES);
    this.#buffer = new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer;
    this.slabBytes = slabBytes;
    this.slabCount = slabCount;
    // Pushed in reverse so the first slab taken is the first in memory (warm pages reused first).
    for (let i = slabCount - 1; i >= 0; i--) this.#free.push(new Uint8Array(this.#buffer, i * slabBytes, slabBytes));
  }

  /** A free slab, or undefined when every slab is in use. */
  take(): Uint8Array | undefined {
    return this.#free.pop();
  }

  /** True when {@link take} would return a slab. */
  get hasFree(): boolean {
    return this.#free.length > 0;
  }

  /** Returns a slab taken from this arena. */
  give(slab: Uint8Array): void {
    this.#free.push(slab);
  }

  /** True when `view` lies in this arena at an aligned offset with an aligned length. */
  holdsAligned(view: Uint8Array): boolean {
    return view.buffer === this.#buffer && view.byteOffset % ARENA_ALIGNMENT_BYTES === 0 && view.byteLength % ARENA_ALIGNMENT_BYTES === 0;
  }
}
