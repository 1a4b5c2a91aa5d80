/**
 * Runbook (recovery plan): ordered stages of entities to bring up at a recovery site,
 * with a delay before each stage (databases before the application servers that need
 * them) and per-entity options. Recovery either clones a restore point into new entities
 * named with a prefix (seed: "Create new entities" with prefixes; used for tests), or
 * restores over the existing entities (seed: "Overwrite existing entities").
 * {@link dryRun} lists every step without doing any.
 */
import { checkEntityRef, entityKey, type EntityRef } from './entity-ref.js';
import { deepFreeze, id, integer, invalid, join, kindTag, list, object, oneOf, text } from './internal/fields.js';

/** Longest stage delay: one day — a longer pause is an operator's decision, not a plan's. */
export const MAX_STAGE_DELAY_MS = 86_400_000;

/** Most stages: 100 — recovery plans are short ordered lists; the bound keeps dry runs small. */
export const MAX_STAGES = 100;

/** How an entity is recovered. */
export type RecoveryMode = 'clone' | 'restore';

/** Per-entity options; unset fields fall back to the runbook's `defaults`. */
export interface RunbookEntityOptions {
  readonly mode?: RecoveryMode;
  /** Name prefix of the clone (mode `clone`). */
  readonly clonePrefix?: string;
  /** Site the entity is recovered at. */
  readonly targetSiteId?: string;
}

/** One entity in a stage. */
export interface RunbookEntity extends RunbookEntityOptions {
  readonly entity: EntityRef;
}

/** One stage: all its entities are recovered, then the next stage starts. */
export interface RunbookStage {
  readonly name: string;
  /** Wait before this stage starts. @defaultValue 0 */
  readonly delayBeforeMs: number;
  readonly entities: readonly RunbookEntity[];
}

/** A runbook. Frozen plain data. */
export interface Runbook {
  readonly kind: 'runbook';
  readonly id: string;
  readonly name: string;
  /** @defaultValue { mode: 'clone', clonePrefix: '' } */
  readonly defaults: { readonly mode: RecoveryMode; readonly clonePrefix: string; readonly targetSiteId?: string };
  readonly stages: readonly RunbookStage[];
}

/** Input of {@link createRunbook}. */
export interface RunbookSpec {
  kind?: 'runbook';
  id: string;
  name?: string;
  defaults?: { mode?: RecoveryMode; clonePrefix?: string; targetSiteId?: string };
  stages: readonly { name?: string; delayBeforeMs?: number; entities: readonly RunbookEntity[] }[];
}

/** The options that apply to `item` after defaults. */
export function effectiveOptions(runbook: Runbook, item: RunbookEntity): { mode: RecoveryMode; clonePrefix: string; targetSiteId: string } {
  return {
    mode: item.mode ?? runbook.defaults.mode,
    clonePrefix: item.clonePrefix ?? runbook.defaults.clonePrefix,
    // createRunbook guarantees one of the two is set.
    targetSiteId: (item.targetSiteId ?? runbook.defaults.targetSiteId)!,
  };
}

/**
 * Validates and freezes a runbook: at least one stage, each with at least one entity; an
 * entity appears once in the whole plan; every entity has a target site (its own or the
 * default); a clone prefix is not given to an entity that is restored in place.
 * @throws INVALID_ARGUMENT with `data.field` naming the bad field
 */
export function createRunbook(spec: RunbookSpec, field = ''): Runbook {
  const f = object(spec, field, ['kind', 'id', 'name', 'defaults', 'stages']);
  kindTag(f, field, 'runbook');
  const runbookId = id(f.id, join(field, 'id'));
  const df = join(field, 'defaults');
  const d = object(f.defaults ?? {}, df, ['mode', 'clonePrefix', 'targetSiteId']);
  const defaults: { mode: RecoveryMode; clonePrefix: string; targetSiteId?: string } = {
    mode: d.mode === undefined ? 'clone' : oneOf(d.mode, join(df, 'mode'), ['clone', 'restore'] as const),
    clonePrefix: d.clonePrefix === undefined ? '' : text(d.clonePrefix, join(df, 'clonePrefix')),
  };
  if (d.targetSiteId !== undefined) defaults.targetSiteId = id(d.targetSiteId, join(df, 'targetSiteId'));

  const stages = list(f.stages, join(field, 'stages'), (s, sf): RunbookStage => {
    const st = object(s, sf, ['name', 'delayBeforeMs', 'entities']);
    const entities = list(st.entities, join(sf, 'entities'), (e, ef): RunbookEntity => {
      const it = object(e, ef, ['entity', 'mode', 'clonePrefix', 'targetSiteId']);
      const item: { entity: EntityRef; mode?: RecoveryMode; clonePrefix?: string; targetSiteId?: string } = { entity: checkEntityRef(it.entity, join(ef, 'entity')) };
      if (it.mode !== undefined) item.mode = oneOf(it.mode, join(ef, 'mode'), ['clone', 'restore'] as const);
      if (it.clonePrefix !== undefined) item.clonePrefix = text(it.clonePrefix, join(ef, 'clonePrefix'));
      if (it.targetSiteId !== undefined) item.targetSiteId = id(it.targetSiteId, join(ef, 'targetSiteId'));
      if ((item.mode ?? defaults.mode) === 'restore' && item.clonePrefix !== undefined) invalid(join(ef, 'clonePrefix'), 'is meaningless for an entity restored in place');
      if (item.targetSiteId === undefined && defaults.targetSiteId === undefined) invalid(join(ef, 'targetSiteId'), 'is required when the runbook has no default target site');
      return item;
    });
    if (entities.length === 0) invalid(join(sf, 'entities'), 'must list at least one entity');
    return {
      name: st.name === undefined ? `stage ${Number(/\[(\d+)\]$/.exec(sf)?.[1] ?? 0) + 1}` : text(st.name, join(sf, 'name'), true),
      delayBeforeMs: st.delayBeforeMs === undefined ? 0 : integer(st.delayBeforeMs, join(sf, 'delayBeforeMs'), 0, MAX_STAGE_DELAY_MS),
      entities,
    };
  }, MAX_STAGES);
  if (stages.length === 0) invalid(join(field, 'stages'), 'must list at least one stage');
  const seen = new Map<string, number>();
  stages.forEach((s, si) => s.entities.forEach((e, ei) => {
    const key = entityKey(e.entity);
    if (seen.has(key)) invalid(join(field, `stages[${si}].entities[${ei}].entity`), `repeats ${key}, already in stage ${seen.get(key)}`, { entity: key });
    seen.set(key, si);
  }));
  return deepFreeze({
    kind: 'runbook',
    id: runbookId,
    name: f.name === undefined ? runbookId : text(f.name, join(field, 'name'), true),
    defaults,
    stages,
  });
}
