/** References to the things a protection domain protects. */
import { id, invalid, join, object, oneOf } from './internal/fields.js';

/** What an entity is: the seed's vDisk (a volume), a volume group, or a file. */
export type EntityKind = 'volume' | 'volume-group' | 'file';

/** The entity kinds, in a fixed order. */
export const ENTITY_KINDS: readonly EntityKind[] = Object.freeze(['volume', 'volume-group', 'file']);

/** A protectable entity, named by kind and id (ids are unique per kind, not across kinds). */
export interface EntityRef {
  readonly kind: EntityKind;
  readonly id: string;
}

/** A key unique per entity, `kind:id`, for maps and sets. */
export function entityKey(entity: EntityRef): string {
  return `${entity.kind}:${entity.id}`;
}

/**
 * Validates an entity reference and returns a fresh, unfrozen copy.
 * @throws INVALID_ARGUMENT naming `field`
 */
export function checkEntityRef(value: unknown, field: string): EntityRef {
  const f = object(value, field, ['kind', 'id']);
  if (f.kind === undefined) invalid(join(field, 'kind'), 'is required');
  return { kind: oneOf(f.kind, join(field, 'kind'), ENTITY_KINDS), id: id(f.id, join(field, 'id')) };
}
