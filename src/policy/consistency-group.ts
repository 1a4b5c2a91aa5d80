/**
 * ConsistencyGroup: entities of one protection domain snapshotted in one atomic commit,
 * so they recover together in a consistent state (seed: "group dependent application or
 * service VMs ... e.g. App and DB"). A PD may hold several; an entity of a PD that is in
 * no group is snapshotted on its own.
 */
import { checkEntityRef, entityKey, type EntityRef } from './entity-ref.js';
import { deepFreeze, id, invalid, join, kindTag, list, object, oneOf, text, unique } from './internal/fields.js';

/** Crash consistency, or application consistency through quiesce hooks (seed: VSS). */
export type Consistency = 'crash' | 'application';

/** A consistency group. Frozen plain data. */
export interface ConsistencyGroup {
  readonly kind: 'consistency-group';
  readonly id: string;
  readonly name: string;
  /** Non-empty, no repeats. */
  readonly entities: readonly EntityRef[];
  /** @defaultValue 'crash' */
  readonly consistency: Consistency;
}

/** Input of {@link createConsistencyGroup}. */
export interface ConsistencyGroupSpec {
  kind?: 'consistency-group';
  id: string;
  /** @defaultValue the id */
  name?: string;
  entities: readonly EntityRef[];
  consistency?: Consistency;
}

/**
 * Validates and freezes a consistency group. Membership of its PD is checked by
 * {@link createProtectionDomain}.
 * @throws INVALID_ARGUMENT with `data.field` naming the bad field
 */
export function createConsistencyGroup(spec: ConsistencyGroupSpec, field = ''): ConsistencyGroup {
  const f = object(spec, field, ['kind', 'id', 'name', 'entities', 'consistency']);
  kindTag(f, field, 'consistency-group');
  const groupId = id(f.id, join(field, 'id'));
  const entities = list(f.entities, join(field, 'entities'), checkEntityRef);
  if (entities.length === 0) invalid(join(field, 'entities'), 'must list at least one entity');
  unique(entities.map(entityKey), join(field, 'entities'), 'entity');
  return deepFreeze({
    kind: 'consistency-group',
    id: groupId,
    name: f.name === undefined ? groupId : text(f.name, join(field, 'name'), true),
    entities,
    consistency: f.consistency === undefined ? 'crash' : oneOf(f.consistency, join(field, 'consistency'), ['crash', 'application'] as const),
  });
}
