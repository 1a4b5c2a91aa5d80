// Real replication between two Node processes over TCP and over TLS with mutual
// certificate authentication (fixtures in test/fixtures/tls). The child is a site
// serving on 127.0.0.1; this process replicates to it, then pulls the snapshot back into
// a third site and compares bytes. Uses the built package (npm test builds first).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryExtentStore, MemoryMetaStore } from '../../dist/adapters/index.js';
import { TcpTransport, TlsTransport } from '../../dist/adapters/node.js';
import { SnapshotTree } from '../../dist/snapshot/index.js';
import { Site } from '../../dist/replication/index.js';

const KiB = 1024;
const psk = new Uint8Array(32).fill(42);
const tlsDir = resolve(__dirname, '../fixtures/tls');
const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) c.kill();
});

async function startChild(siteId: string, kind: 'tcp' | 'tls'): Promise<string> {
  const child = spawn(process.execPath, [join(__dirname, 'fixtures/site-process.mjs'), siteId, kind, '', tlsDir], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    const msg = JSON.parse(line) as { ready?: boolean; address?: string };
    if (msg.ready) return msg.address!;
  }
  throw new Error(`site process ${siteId} exited before it was ready`);
}

async function localSite(siteId: string) {
  const meta = await MemoryMetaStore.open();
  const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open() });
  return { tree, site: await Site.open({ siteId, tree, meta, peerKeys: () => psk }) };
}

function tlsFor(siteId: string) {
  return TlsTransport.create({ key: readFileSync(join(tlsDir, `${siteId}.key`)), cert: readFileSync(join(tlsDir, `${siteId}.crt`)), ca: readFileSync(join(tlsDir, 'ca.crt')) });
}

for (const kind of ['tcp', 'tls'] as const) {
  describe(`replication between processes over ${kind.toUpperCase()}`, () => {
    it('replicates, replicates incrementally, and pulls back bit-identical', async () => {
      const address = await startChild('siteB', kind);
      const transport = kind === 'tls' ? tlsFor('siteA') : TcpTransport.create();
      const remote = { siteId: 'siteB', address, transport, psk, ...(kind === 'tls' ? { authenticate: (p: { commonName?: string }, id: string) => p.commonName === id } : {}) };
      const a = await localSite('siteA');
      const vol = await a.tree.createVolume({ name: 'db', byteLength: 512 * 16 * KiB });
      const data = new Uint8Array(vol.byteLength);
      for (let i = 0; i < data.length; i += 4) new DataView(data.buffer).setUint32(i, (i * 2654435761) >>> 0);
      await vol.write(0, data);
      const s1 = await a.tree.snapshot(vol.id, { name: 's1' });
      const r1 = await a.site.replicate(s1.id, remote);
      await vol.write(100 * 16 * KiB, new Uint8Array(16 * KiB).fill(9));
      const s2 = await a.tree.snapshot(vol.id, { name: 's2' });
      const r2 = await a.site.replicate(s2.id, remote);
      expect(r2.progress.sentExtentBytes).toBe(16 * KiB);

      // Site A after losing its data: a fresh siteA (same identity, same certificate) restores from B.
      const c = await localSite('siteA');
      const cTransport = kind === 'tls' ? tlsFor('siteA') : TcpTransport.create();
      const pulled = await c.site.pull({ ...remote, transport: cTransport }, r2.remoteSnapshotIds[0]!);
      const back = c.tree.openSnapshot(pulled.id);
      const orig = a.tree.openSnapshot(s2.id);
      expect(Buffer.compare(Buffer.from(await back.read(0, back.byteLength)), Buffer.from(await orig.read(0, orig.byteLength)))).toBe(0);
      await back.close();
      await orig.close();
      expect(r1.remoteSnapshotIds[0]).not.toBe(r2.remoteSnapshotIds[0]);
      await a.site.close();
      await c.site.close();
    });
  });
}

describe('TLS identity', () => {
  it('refuses a client whose certificate the CA did not issue', async () => {
    const address = await startChild('siteB', 'tls');
    const rogue = TlsTransport.create({ key: readFileSync(join(tlsDir, 'rogue.key')), cert: readFileSync(join(tlsDir, 'rogue.crt')), ca: readFileSync(join(tlsDir, 'ca.crt')) });
    const a = await localSite('siteA');
    const vol = await a.tree.createVolume({ name: 'v', byteLength: 16 * 16 * KiB });
    const s = await a.tree.snapshot(vol.id, { name: 's' });
    await expect(a.site.replicate(s.id, { siteId: 'siteB', address, transport: rogue, psk }, { retries: 0 })).rejects.toMatchObject({ code: 'AUTH_FAILED' });
    await a.site.close();
  });
});
