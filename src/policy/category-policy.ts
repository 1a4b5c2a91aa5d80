/**
 * CategoryPolicy: the policy-based model (seed: "Policy Based DR"; Leap). Entities carry
 * categories — `key:value` labels — and a policy applies to every entity labelled with
 * one of its categories, instead of listing entities. A policy with no categories can
 * serve as the default policy for entities without one ({@link resolvePolicies}).
 *
 * What a policy says: its schedule's recurrence is the RPO, the schedule's retention is
 * the retention, its `remoteSiteIds` are the targets (each configured in `remoteSites`),
 * and `consistency` is crash or application.
 */
import type { Consistency } from './consistency-group.js';
import { deepFreeze, id, integer, invalid, join, kindTag, list, object, oneOf, text, unique } from './internal/fields.js';
import { createRemoteSite, type RemoteSite, type RemoteSiteSpec } from './remote-site.js';
import { createSchedule, type Schedule, type ScheduleSpec } from './schedule.js';

/** Most categories one policy matches: 1,000 — labels are few; a bound keeps matching cheap. */
export const MAX_CATEGORIES_PER_POLICY = 1000;

/** A `key:value` label on an entity. */
export interface CategoryLabel {
  readonly key: string;
  readonly value: string;
}

/** A category policy. Frozen plain data. */
export interface CategoryPolicy {
  readonly kind: 'category-policy';
  readonly id: string;
  readonly name: string;
  /** The policy applies to entities with ANY of these labels. */
  readonly categories: readonly CategoryLabel[];
  /** Higher wins when an entity matches several policies. @defaultValue 0 */
  readonly priority: number;
  readonly schedule: Schedule;
  readonly remoteSites: readonly RemoteSite[];
  /** @defaultValue 'crash' */
  readonly consistency: Consistency;
}

/** Input of {@link createCategoryPolicy}. */
export interface CategoryPolicySpec {
  kind?: 'category-policy';
  id: string;
  name?: string;
  categories?: readonly CategoryLabel[];
  priority?: number;
  schedule: ScheduleSpec;
  remoteSites?: readonly RemoteSiteSpec[];
  consistency?: Consistency;
}

/** `key:value`, the printed form of a label. */
export function categoryKey(label: CategoryLabel): string {
  return `${label.key}:${label.value}`;
}

/** Validates a label. @throws INVALID_ARGUMENT */
export function checkCategoryLabel(value: unknown, field: string): CategoryLabel {
  const f = object(value, field, ['key', 'value']);
  return { key: id(f.key, join(field, 'key')), value: id(f.value, join(field, 'value')) };
}

/**
 * Validates and freezes a category policy. The seed's rule holds here too: every target
 * of the schedule, and every remote retention, names a site in `remoteSites`.
 * @throws INVALID_ARGUMENT with `data.field` naming the bad field
 */
export function createCategoryPolicy(spec: CategoryPolicySpec, field = ''): CategoryPolicy {
  const f = object(spec, field, ['kind', 'id', 'name', 'categories', 'priority', 'schedule', 'remoteSites', 'consistency']);
  kindTag(f, field, 'category-policy');
  const policyId = id(f.id, join(field, 'id'));
  const categories = f.categories === undefined ? [] : list(f.categories, join(field, 'categories'), checkCategoryLabel, MAX_CATEGORIES_PER_POLICY);
  unique(categories.map(categoryKey), join(field, 'categories'), 'category');
  const remoteSites = f.remoteSites === undefined ? [] : list(f.remoteSites, join(field, 'remoteSites'), (s, sf) => createRemoteSite(s as RemoteSiteSpec, sf));
  unique(remoteSites.map((s) => s.id), join(field, 'remoteSites'), 'site id');
  const schedule = createSchedule(f.schedule as ScheduleSpec, join(field, 'schedule'));
  const siteIds = new Set(remoteSites.map((s) => s.id));
  schedule.remoteSiteIds.forEach((siteId, i) => {
    if (!siteIds.has(siteId)) invalid(join(field, `schedule.remoteSiteIds[${i}]`), `targets remote site '${siteId}', which is not configured on this policy`, { siteId });
  });
  return deepFreeze({
    kind: 'category-policy',
    id: policyId,
    name: f.name === undefined ? policyId : text(f.name, join(field, 'name'), true),
    categories,
    priority: f.priority === undefined ? 0 : integer(f.priority, join(field, 'priority'), -1_000_000, 1_000_000),
    schedule,
    remoteSites,
    consistency: f.consistency === undefined ? 'crash' : oneOf(f.consistency, join(field, 'consistency'), ['crash', 'application'] as const),
  });
}
