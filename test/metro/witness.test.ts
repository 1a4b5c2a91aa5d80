// The witness's lease rules and its durable state file: one holder at a time, a new term
// per new holder, an outdated site never granted, release; the state survives a restart
// (every held lease counts as just renewed) and a damaged file is CORRUPTION, never a guess.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/adapters/index.js';
import { FileWitnessStore, Witness } from '../../src/metro/index.js';
import { codeOf } from './metro-harness.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const req = (siteId: string, peerInSync = true, release = false) => ({ pairId: 'p', siteId, peerSiteId: siteId === 'a' ? 'b' : 'a', peerInSync, release });

describe('Witness', () => {
  it('leases to one site at a time, outdates and fences, and keeps its state across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drkit-witness-'));
    dirs.push(dir);
    const clock = new VirtualClock(1000);
    const store = new FileWitnessStore(join(dir, 'state.json'));
    const w = await Witness.open({ store, clock, leaseMs: 1000 });
    expect(await w.request(req('a'))).toMatchObject({ granted: true, term: 1 });
    expect(await w.request(req('b', false))).toMatchObject({ granted: false, reason: 'held', holder: 'a' });
    // a continues alone: b becomes outdated; after a's lease expires b is still refused.
    expect(await w.request(req('a', false))).toMatchObject({ granted: true, term: 1 });
    await clock.advance(1500);
    expect(await w.request(req('b', false))).toMatchObject({ granted: false, reason: 'outdated' });
    // After a restart the outdated mark and the term are still there, and a's lease counts as renewed.
    const w2 = await Witness.open({ store: new FileWitnessStore(join(dir, 'state.json')), clock, leaseMs: 1000 });
    expect(w2.lease('p')).toEqual({ holder: 'a', term: 1, outdated: 'b' });
    // a back in sync, then released: b takes it at a new term.
    expect(await w2.request(req('a', true))).toMatchObject({ granted: true });
    expect(await w2.request(req('a', true, true))).toMatchObject({ granted: false, reason: 'released' });
    expect(await w2.request(req('b', false))).toMatchObject({ granted: true, term: 2 });
  });

  it('a damaged state file is CORRUPTION', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drkit-witness-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'state.json'), '{"format":1,"pairs":{"p":{"holder":"a","term":-1}}}');
    expect(await codeOf(Witness.open({ store: new FileWitnessStore(join(dir, 'state.json')), clock: new VirtualClock(), leaseMs: 1000 }))).toBe('CORRUPTION');
    writeFileSync(join(dir, 'state.json'), '{"format":1,');
    expect(await codeOf(Witness.open({ store: new FileWitnessStore(join(dir, 'state.json')), clock: new VirtualClock(), leaseMs: 1000 }))).toBe('CORRUPTION');
  });
});
