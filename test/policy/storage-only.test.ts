// storageOnly honoured: a storage-only remote site holds replicas but is never a recovery
// target of policy code — a runbook step aimed at it is blocked in the dry run, and a
// remote promotion onto it is refused before any connection is made.
import { describe, expect, it } from 'vitest';
import { MemoryExtentStore, MemoryMetaStore, type Transport } from '../../src/adapters/index.js';
import { createRemoteSite, createRunbook, dryRun, replicationRemoteOf } from '../../src/policy/index.js';
import { Site } from '../../src/replication/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';

const vol = (id: string) => ({ kind: 'volume' as const, id });
const vault = (storageOnly: boolean) => createRemoteSite({ id: 'vault', address: 'vault:7000', credentialsRef: 'k', options: { storageOnly } });

describe('a storage-only remote site', () => {
  const runbook = createRunbook({ id: 'rb', defaults: { targetSiteId: 'vault' }, stages: [{ name: 'db', entities: [{ entity: vol('db') }] }] });
  const recoveryPoints = [{ siteId: 'vault', entity: vol('db'), snapshots: [{ id: 'r-1', createdMs: 1 }] }];

  it('is never a runbook target: the dry run blocks the entity (storage-only) and is not ready', () => {
    const plan = dryRun(runbook, { recoveryPoints, remoteSites: [vault(true)] });
    expect(plan.ready).toBe(false);
    expect(plan.problems).toMatchObject([{ kind: 'blocked', siteId: 'vault', problem: 'storage-only' }]);
    expect(plan.steps.some((s) => s.kind === 'clone' || s.kind === 'restore')).toBe(false);
  });

  it('the same runbook at a site that runs workloads is ready (the block is the flag\'s doing)', () => {
    const plan = dryRun(runbook, { recoveryPoints, remoteSites: [vault(false)] });
    expect(plan.ready).toBe(true);
    expect(plan.steps.map((s) => s.kind)).toContain('clone');
  });

  it('refuses a remote promotion onto it with INVALID_ARGUMENT (reason storage-only), without connecting', async () => {
    const meta = await MemoryMetaStore.open();
    const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open() });
    const site = await Site.open({ siteId: 'A', tree, meta });
    let connects = 0;
    const transport: Transport = {
      connect: () => {
        connects++;
        return Promise.reject(new Error('must not connect'));
      },
      listen: () => Promise.reject(new Error('unused')),
    };
    try {
      const remote = replicationRemoteOf(vault(true), { transport });
      expect(remote.storageOnly).toBe(true);
      await expect(site.promoteRemote(remote, [{ lineage: 'A/vol-1', originSnapshotId: 'snap-1', sourceGeneration: 0, volumeName: 'db' }], { retries: 0 }))
        .rejects.toMatchObject({ code: 'INVALID_ARGUMENT', data: { siteId: 'vault', reason: 'storage-only' } });
      expect(connects).toBe(0);
    } finally {
      await site.close();
    }
  });
});
