import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryTransport, type Connection, type Transport } from '../../src/adapters/index.js';
import { TcpTransport, TlsTransport, type TlsTransportOptions } from '../../src/adapters/node.js';
import { describeTransport } from '../../src/testing/index.js';
import { isDrkitError, type DrkitError } from '../../src/core/errors.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'tls');
const pem = (name: string): string => readFileSync(join(fixtures, name), 'utf8');
const ca = pem('ca.crt');
const site = (name: 'siteA' | 'siteB' | 'rogue', extra: Partial<TlsTransportOptions> = {}): TlsTransport =>
  TlsTransport.create({ key: pem(`${name}.key`), cert: pem(`${name}.crt`), ca, ...extra });

describeTransport({
  name: 'MemoryTransport',
  create: async () => {
    const net = MemoryTransport.create();
    return { server: net, client: net, address: 'siteB:7000' };
  },
});

describeTransport({
  name: 'TcpTransport',
  create: async () => ({ server: TcpTransport.create(), client: TcpTransport.create(), address: '127.0.0.1:0' }),
});

describeTransport({
  name: 'TlsTransport',
  create: async () => ({ server: site('siteB'), client: site('siteA', { serverName: 'siteB' }), address: '127.0.0.1:0' }),
  numRuns: 8,
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return isDrkitError(err) ? err.code : `foreign ${String(err)}`;
  }
}

/** Listens with `server`; collects delivered connections and reported errors. */
async function listen(server: Transport) {
  const delivered: Connection[] = [];
  const errors: DrkitError[] = [];
  let notify: () => void = () => undefined;
  const listener = await server.listen('127.0.0.1:0', {
    onConnection: (c) => {
      delivered.push(c);
      notify();
    },
    onError: (e) => {
      errors.push(e);
      notify();
    },
  });
  const next = (): Promise<void> => new Promise((resolve) => (notify = resolve));
  return { listener, delivered, errors, next };
}

describe('TlsTransport authentication', () => {
  it('refuses a client with a rogue certificate on both sides with AUTH_FAILED', async () => {
    const server = await listen(site('siteB'));
    try {
      const reported = server.next();
      expect(await codeOf(site('rogue').connect(server.listener.address))).toBe('AUTH_FAILED');
      await reported;
      expect(server.errors.map((e) => e.code)).toEqual(['AUTH_FAILED']);
      expect(server.delivered).toHaveLength(0);
    } finally {
      await server.listener.close();
    }
  });

  it('refuses a server with a rogue certificate on both sides with AUTH_FAILED', async () => {
    const rogue = await listen(site('rogue'));
    try {
      const reported = rogue.next();
      expect(await codeOf(site('siteA').connect(rogue.listener.address))).toBe('AUTH_FAILED');
      await reported;
      expect(rogue.errors.map((e) => e.code)).toEqual(['AUTH_FAILED']);
      expect(rogue.delivered).toHaveLength(0);
    } finally {
      await rogue.listener.close();
    }
  });

  it('reports the verified fingerprint and common name of each peer', async () => {
    const fingerprint = (name: string): string => new X509Certificate(pem(name)).fingerprint256.replace(/:/g, '').toLowerCase();
    const server = await listen(site('siteB'));
    try {
      const accepted = server.next();
      const client = await site('siteA', { serverName: 'siteB' }).connect(server.listener.address);
      await accepted;
      const serverSide = server.delivered[0] as Connection;
      expect(client.peer).toEqual({ address: server.listener.address, commonName: 'siteB', certificateFingerprint: fingerprint('siteB.crt') });
      expect(serverSide.peer.commonName).toBe('siteA');
      expect(serverSide.peer.certificateFingerprint).toBe(fingerprint('siteA.crt'));
      client.destroy();
      serverSide.destroy();
    } finally {
      await server.listener.close();
    }
  });

  it('enforces serverName and allowedFingerprints', async () => {
    const server = await listen(site('siteB', { allowedFingerprints: ['00'.repeat(32)] }));
    try {
      expect(await codeOf(site('siteA', { serverName: 'siteC' }).connect(server.listener.address))).toBe('AUTH_FAILED');
      const reported = server.next();
      expect(await codeOf(site('siteA').connect(server.listener.address))).toBe('AUTH_FAILED');
      await reported;
      expect(server.errors.map((e) => e.code)).toContain('AUTH_FAILED');
      expect(server.delivered).toHaveLength(0);
    } finally {
      await server.listener.close();
    }
  });

  it('times out against a peer that never completes the TLS handshake', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      expect(await codeOf(site('siteA').connect(`127.0.0.1:${port}`, { timeoutMs: 200 }))).toBe('TIMEOUT');
    } finally {
      silent.close();
    }
  });

  it('rejects bad key material with INVALID_ARGUMENT', () => {
    expect(() => TlsTransport.create({ key: 'nope', cert: pem('siteA.crt'), ca })).toThrow(/bad key/);
    expect(() => site('siteA', { allowedFingerprints: ['xyz'] })).toThrow(/fingerprint/);
  });
});
