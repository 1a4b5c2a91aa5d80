// Types of bench/workload.mjs, for the TypeScript tests that check it.
import type { BlockDevice } from '../src/adapters/block-device.js';

export declare const REGION_BYTES: number;
export declare const CHUNK_BYTES: number;
export declare const V2_BLOCK_BYTES: number;
export declare const V2_CHANGED_FRACTION: number;
export declare const DEFAULT_IMAGE_BYTES: number;
export declare const DEFAULT_SEED: number;
export declare const KIND: Readonly<{ random: 0; text: 1; zero: 2; copy: 3 }>;
export declare const KIND_NAMES: readonly ['random', 'text', 'zero', 'copy'];
export declare const MIX: readonly number[];

export interface ImageOptions {
  byteLength?: number;
  seed?: number;
}
export interface RegionPlan {
  byteLength: number;
  seed: number;
  regionCount: number;
  kinds: Uint8Array;
  copyOf: Int32Array;
  counts: number[];
}
export interface Version2 {
  blockByteLength: number;
  blockCount: number;
  blockIndices: Uint32Array;
  changedBytes: number;
  writes(): Generator<{ byteOffset: number; data: Uint8Array }>;
}

export declare function xorshift32(seed: number): () => number;
export declare function kindCounts(regionCount: number): number[];
export declare function regionPlan(options?: ImageOptions): RegionPlan;
export declare function fillRegion(plan: RegionPlan, index: number, out: Uint8Array): Uint8Array;
export declare function standardImageChunks(options?: ImageOptions): Generator<{ byteOffset: number; data: Uint8Array }>;
export declare function writeStandardImage(path: string, options?: ImageOptions): Promise<{ byteLength: number; regionCount: number; counts: number[] }>;
export declare function version2Writes(options?: ImageOptions): Version2;
export declare function applyVersion2(device: BlockDevice, options?: { seed?: number; signal?: AbortSignal }): Promise<{ changedBytes: number; blockCount: number }>;
