// Trees and servers for the NBD tests: memory stores (fast), one volume "disk" with
// seeded content and a snapshot "s1" of it, and a server on an ephemeral TCP port.
import { MemoryExtentStore, MemoryMetaStore, type MetaStore } from '../../src/adapters/index.js';
import { NbdServer, type NbdServerOptions } from '../../src/nbd/index.js';
import { SnapshotTree, type Volume } from '../../src/snapshot/index.js';
import { SeededPrng } from '../../src/testing/index.js';
import type { DrkitError } from '../../src/core/errors.js';
import { afterEach, beforeEach } from 'vitest';
import { RawNbdClient } from './raw-nbd-client.js';

export const DISK_BYTES = 1024 * 1024;
export const DISK_BLOCK_BYTES = 4096;

export interface Fixture {
  tree: SnapshotTree;
  disk: Volume;
  /** What "disk" and its snapshot "s1" hold. */
  image: Uint8Array;
  /** MetaStore batches committed with { sync: true }: durable tree commits. */
  durableCommits(): number;
}

export async function memoryFixture(seed = 15): Promise<Fixture> {
  const inner = await MemoryMetaStore.open();
  let syncs = 0;
  // Counts durable commits (a FLUSH must make one) without changing what the store does.
  const meta = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'batch') {
        return (ops: unknown, options?: { sync?: boolean }) => {
          if (options?.sync === true) syncs++;
          return (target.batch as (o: unknown, p?: unknown) => Promise<void>)(ops, options);
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as MetaStore;
  const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open() });
  const disk = await tree.createVolume({ name: 'disk', byteLength: DISK_BYTES, blockBytes: DISK_BLOCK_BYTES });
  const image = new SeededPrng(seed).fill(new Uint8Array(DISK_BYTES));
  image.fill(0, DISK_BYTES / 2, DISK_BYTES / 2 + 64 * 1024); // a hole
  await disk.write(0, image);
  await tree.snapshot(disk.id, { name: 's1' });
  return { tree, disk, image, durableCommits: () => syncs };
}

/** A server on 127.0.0.1:0 collecting the errors it reports. */
export async function startServer(tree: SnapshotTree, extra: Partial<NbdServerOptions> = {}): Promise<{ server: NbdServer; errors: DrkitError[] }> {
  const errors: DrkitError[] = [];
  const server = await NbdServer.start({ tree, listen: { port: 0 }, onError: (e) => errors.push(e), ...extra });
  return { server, errors };
}

/** What {@link perTestServer} gives each test: a fresh fixture, a server on it, client helpers. */
export interface Harness {
  readonly fx: Fixture;
  readonly server: NbdServer;
  readonly errors: DrkitError[];
  /** Clients opened through the harness; destroyed after each test. */
  readonly clients: RawNbdClient[];
  /** A raw client connected to `srv` (the harness server by default). */
  connect(srv?: NbdServer): Promise<RawNbdClient>;
  /** A raw client that has negotiated export `name` and is in transmission. */
  open(name: string, srv?: NbdServer): Promise<RawNbdClient>;
}

/** Registers beforeEach/afterEach hooks giving every test of the file a fresh harness. */
export function perTestServer(): Harness {
  let fx: Fixture | undefined;
  let started: { server: NbdServer; errors: DrkitError[] } | undefined;
  const clients: RawNbdClient[] = [];
  const h: Harness = {
    get fx() {
      return fx!;
    },
    get server() {
      return started!.server;
    },
    get errors() {
      return started!.errors;
    },
    clients,
    async connect(srv = started!.server) {
      const c = await RawNbdClient.connect(srv.address);
      clients.push(c);
      return c;
    },
    async open(name, srv) {
      const c = await h.connect(srv);
      await c.go(name);
      return c;
    },
  };
  beforeEach(async () => {
    fx = await memoryFixture();
    started = await startServer(fx.tree);
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await started!.server.close();
  });
  return h;
}
