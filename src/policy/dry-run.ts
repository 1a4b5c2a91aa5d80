/**
 * dryRun: every step a runbook would take, in order, without doing any. The recovery
 * engine executes the same list, so what an operator reviews is what runs.
 */
import { checkEntityRef, entityKey, type EntityRef } from './entity-ref.js';
import { id, integer, join, list, object, unique } from './internal/fields.js';
import { effectiveOptions, type Runbook } from './runbook.js';
import { createRemoteSite, type RemoteSite, type RemoteSiteSpec } from './remote-site.js';

/** A restore point available at a site. `SnapshotInfo` fits. */
export interface RecoveryPoint {
  readonly id: string;
  readonly createdMs: number;
  readonly groupId?: string | undefined;
}

/** What the dry run knows about the world. */
export interface DryRunContext {
  /** Restore points available at each site, per entity. */
  recoveryPoints: readonly { siteId: string; entity: EntityRef; snapshots: readonly RecoveryPoint[] }[];
  /** Recover the latest restore point at or before this instant. @defaultValue the latest available */
  pointInTimeMs?: number;
  /** Sites that exist. @defaultValue every site named in `recoveryPoints` */
  knownSiteIds?: readonly string[];
  /**
   * The configured remote sites (e.g. the domain's `remoteSites`): an entity whose target
   * is a storage-only one is blocked (`storage-only`), since a backup target runs nothing.
   * @defaultValue none known storage-only
   */
  remoteSites?: readonly RemoteSite[];
}

/** Fields every step has. */
interface StepBase {
  readonly stageIndex: number;
  /** One sentence for an operator. */
  readonly description: string;
}

/** One step of a dry run. */
export type RunbookStep =
  | (StepBase & { readonly kind: 'wait'; readonly delayMs: number })
  | (StepBase & { readonly kind: 'begin-stage'; readonly stageName: string; readonly entityCount: number; readonly minOffsetMs: number })
  | (StepBase & { readonly kind: 'select-recovery-point'; readonly entity: EntityRef; readonly siteId: string; readonly snapshotId: string; readonly createdMs: number; readonly groupId: string | undefined })
  | (StepBase & { readonly kind: 'clone'; readonly entity: EntityRef; readonly siteId: string; readonly snapshotId: string; readonly cloneName: string })
  | (StepBase & { readonly kind: 'restore'; readonly entity: EntityRef; readonly siteId: string; readonly snapshotId: string })
  | (StepBase & { readonly kind: 'blocked'; readonly entity: EntityRef; readonly siteId: string; readonly problem: 'unknown-site' | 'storage-only' | 'no-recovery-point' })
  | (StepBase & { readonly kind: 'end-stage' });

/** Result of {@link dryRun}. */
export interface DryRunResult {
  readonly steps: readonly RunbookStep[];
  /** The `blocked` steps. */
  readonly problems: readonly RunbookStep[];
  /** True when nothing is blocked. */
  readonly ready: boolean;
  /** Sum of stage delays: the least time the plan takes. */
  readonly totalDelayMs: number;
}

/**
 * Lists every step `runbook` would take under `context`: per stage, an optional wait,
 * begin-stage, then per entity the restore point chosen (the latest at or before
 * `pointInTimeMs` at its target site) and the clone or restore of it — or a `blocked`
 * step saying why it cannot — then end-stage. Pure: no I/O.
 * @throws INVALID_ARGUMENT for a malformed context
 */
export function dryRun(runbook: Runbook, context: DryRunContext): DryRunResult {
  const cf = object(context, 'context', ['recoveryPoints', 'pointInTimeMs', 'knownSiteIds', 'remoteSites']);
  const pointInTimeMs = cf.pointInTimeMs === undefined ? undefined : integer(cf.pointInTimeMs, 'context.pointInTimeMs', 0, Number.MAX_SAFE_INTEGER);
  const points = new Map<string, RecoveryPoint[]>();
  const sites = new Set<string>();
  list(cf.recoveryPoints, 'context.recoveryPoints', (r, rf) => {
    const e = object(r, rf, ['siteId', 'entity', 'snapshots']);
    const siteId = id(e.siteId, join(rf, 'siteId'));
    const entity = checkEntityRef(e.entity, join(rf, 'entity'));
    const snaps = list(e.snapshots, join(rf, 'snapshots'), (s, sf) => {
      const o = object(s, sf, ['id', 'createdMs', 'groupId', 'name', 'volumeId', 'parentSnapshotId', 'byteLength', 'blockBytes', 'consistency', 'fallbackReason', 'userMetadata']);
      return { id: id(o.id, join(sf, 'id')), createdMs: integer(o.createdMs, join(sf, 'createdMs'), 0, Number.MAX_SAFE_INTEGER), groupId: o.groupId === undefined ? undefined : id(o.groupId, join(sf, 'groupId')) };
    });
    unique(snaps.map((s) => s.id), join(rf, 'snapshots'), 'snapshot id');
    const key = `${siteId}\u0000${entityKey(entity)}`;
    points.set(key, [...(points.get(key) ?? []), ...snaps]);
    sites.add(siteId);
  });
  const known = cf.knownSiteIds === undefined ? sites : new Set(list(cf.knownSiteIds, 'context.knownSiteIds', id));
  const storageOnly = new Set(
    (cf.remoteSites === undefined ? [] : list(cf.remoteSites, 'context.remoteSites', (r, rf) => createRemoteSite(r as RemoteSiteSpec, rf))).filter((r) => r.options.storageOnly).map((r) => r.id),
  );

  const steps: RunbookStep[] = [];
  let offsetMs = 0;
  runbook.stages.forEach((stage, stageIndex) => {
    if (stage.delayBeforeMs > 0) {
      steps.push({ kind: 'wait', stageIndex, delayMs: stage.delayBeforeMs, description: `wait ${stage.delayBeforeMs} ms before stage '${stage.name}'` });
      offsetMs += stage.delayBeforeMs;
    }
    steps.push({
      kind: 'begin-stage', stageIndex, stageName: stage.name, entityCount: stage.entities.length, minOffsetMs: offsetMs,
      description: `begin stage ${stageIndex + 1} '${stage.name}' (${stage.entities.length} entities) at +${offsetMs} ms or later`,
    });
    for (const item of stage.entities) {
      const { mode, clonePrefix, targetSiteId: siteId } = effectiveOptions(runbook, item);
      const entity = item.entity;
      const key = entityKey(entity);
      if (!known.has(siteId)) {
        steps.push({ kind: 'blocked', stageIndex, entity, siteId, problem: 'unknown-site', description: `cannot recover ${key}: target site '${siteId}' is not known` });
        continue;
      }
      if (storageOnly.has(siteId)) {
        steps.push({ kind: 'blocked', stageIndex, entity, siteId, problem: 'storage-only', description: `cannot recover ${key} at '${siteId}': it is a storage-only site (a backup target), pull the restore point to a site that runs workloads` });
        continue;
      }
      const candidates = (points.get(`${siteId}\u0000${key}`) ?? []).filter((s) => pointInTimeMs === undefined || s.createdMs <= pointInTimeMs);
      // Latest first; equal times break by id so the choice never depends on input order.
      const chosen = candidates.sort((a, b) => b.createdMs - a.createdMs || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))[0];
      if (chosen === undefined) {
        const when = pointInTimeMs === undefined ? '' : ` at or before ${new Date(pointInTimeMs).toISOString()}`;
        steps.push({ kind: 'blocked', stageIndex, entity, siteId, problem: 'no-recovery-point', description: `cannot recover ${key}: no restore point at site '${siteId}'${when}` });
        continue;
      }
      const group = chosen.groupId === undefined ? '' : ` (consistency group ${chosen.groupId})`;
      steps.push({
        kind: 'select-recovery-point', stageIndex, entity, siteId, snapshotId: chosen.id, createdMs: chosen.createdMs, groupId: chosen.groupId,
        description: `use restore point ${chosen.id} of ${key} taken ${new Date(chosen.createdMs).toISOString()} at site '${siteId}'${group}`,
      });
      if (mode === 'clone') {
        const cloneName = `${clonePrefix}${entity.id}`;
        steps.push({ kind: 'clone', stageIndex, entity, siteId, snapshotId: chosen.id, cloneName, description: `clone ${chosen.id} into new ${entity.kind} '${cloneName}' at site '${siteId}'` });
      } else {
        steps.push({ kind: 'restore', stageIndex, entity, siteId, snapshotId: chosen.id, description: `restore ${key} in place from ${chosen.id} at site '${siteId}' (replaces its current contents)` });
      }
    }
    steps.push({ kind: 'end-stage', stageIndex, description: `end stage ${stageIndex + 1} '${stage.name}'` });
  });
  const problems = steps.filter((s) => s.kind === 'blocked');
  return { steps, problems, ready: problems.length === 0, totalDelayMs: offsetMs };
}
