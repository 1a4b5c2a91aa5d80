// The Metro relation in the policy model: a PD is Metro to one configured, non-storage-only
// site and may replicate asynchronously to others, never to its Metro site; it survives the
// policy JSON round trip, and the Protector lists Metro-protected domains.
import { describe, expect, it } from 'vitest';
import { createProtectionDomain, fromPolicyJSON, metroProtectionOf, toPolicyJSON, type ProtectionDomainSpec } from '../../src/policy/index.js';
import { World } from './protector-harness.js';

const sites = [
  { id: 'metroB', address: 'b:7000', credentialsRef: 'kb' },
  { id: 'dr', address: 'dr:7000', credentialsRef: 'kdr' },
  { id: 'vault', address: 'v:7000', credentialsRef: 'kv', options: { storageOnly: true } },
];
const spec = (extra: Partial<ProtectionDomainSpec> = {}): ProtectionDomainSpec => ({
  id: 'gold',
  protects: { kind: 'entities', entities: [{ kind: 'volume', id: 'db' }] },
  remoteSites: sites,
  schedules: [{ id: 'daily', recurrence: { kind: 'daily', at: '01:00' }, timeZone: 'UTC', remoteSiteIds: ['dr'], retention: { local: { keepLast: 7 }, remote: [{ siteId: 'dr', rule: { keepLast: 30 } }] } }],
  metro: { siteId: 'metroB', witnessAddress: 'w:9000' },
  ...extra,
});

describe('Metro relation of a protection domain', () => {
  it('is Metro to one site and async to another, with defaults, and round-trips through policy JSON', () => {
    const pd = createProtectionDomain(spec());
    expect(pd.metro).toEqual({ kind: 'metro-relation', siteId: 'metroB', witnessAddress: 'w:9000', mode: 'durable', leaseMs: 5000, preferredSite: 'local' });
    expect(Object.isFrozen(pd.metro)).toBe(true);
    expect(fromPolicyJSON(toPolicyJSON(pd), 'protection-domain')).toEqual(pd);
    expect(metroProtectionOf(pd)?.relation.siteId).toBe('metroB');
    expect(metroProtectionOf(createProtectionDomain({ ...spec(), metro: undefined }))).toBeUndefined();
  });

  it('refuses a Metro site that is not configured, is storage-only, or is also an async target', () => {
    expect(() => createProtectionDomain(spec({ metro: { siteId: 'nowhere', witnessAddress: 'w:9000' } }))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', data: expect.objectContaining({ field: 'metro.siteId' }) }));
    expect(() => createProtectionDomain(spec({ metro: { siteId: 'vault', witnessAddress: 'w:9000' } }))).toThrow(expect.objectContaining({ data: expect.objectContaining({ field: 'metro.siteId' }) }));
    expect(() => createProtectionDomain(spec({ metro: { siteId: 'dr', witnessAddress: 'w:9000' } }))).toThrow(expect.objectContaining({ data: expect.objectContaining({ field: 'schedules[0].remoteSiteIds[0]' }) }));
    expect(() => createProtectionDomain(spec({ metro: { siteId: 'metroB', witnessAddress: 'w:9000', leaseMs: 0 } }))).toThrow(expect.objectContaining({ data: expect.objectContaining({ field: 'metro.leaseMs' }) }));
    expect(() => createProtectionDomain(spec({ metro: { siteId: 'metroB', witnessAddress: 'w:9000', mode: 'async' as 'durable' } }))).toThrow(expect.objectContaining({ data: expect.objectContaining({ field: 'metro.mode' }) }));
  });

  it('the Protector knows the Metro-protected domains', async () => {
    const w = await World.create(1, Date.UTC(2026, 0, 1));
    const p = w.gen.protector;
    await p.addDomain({ id: 'plain', protects: { kind: 'entities', entities: [{ kind: 'volume', id: 'x' }] } });
    await p.addDomain({ ...spec(), remoteSites: [sites[0]!, sites[1]!], schedules: [] });
    expect(p.metroProtections().map((m) => [m.domainId, m.relation.siteId])).toEqual([['gold', 'metroB']]);
    await p.stop();
  });
});
