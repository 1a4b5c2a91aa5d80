/**
 * Which category policy protects each entity, and why.
 *
 * Precedence when an entity's categories match several policies:
 * 1. the highest `priority`;
 * 2. then the shortest RPO ({@link nominalRpoMs} of the policy's schedule) — the
 *    stricter promise wins, so adding a label never weakens protection at equal priority;
 * 3. then the smallest policy id (code-unit order), so the answer never depends on input order.
 * An entity matching no policy gets `defaultPolicy`; without one it is unprotected.
 */
import { categoryKey, checkCategoryLabel, type CategoryLabel, type CategoryPolicy } from './category-policy.js';
import { checkEntityRef, entityKey, type EntityRef } from './entity-ref.js';
import { invalid, join, list, object, unique } from './internal/fields.js';
import { nominalRpoMs } from './schedule.js';

/** The labels of one entity. */
export interface CategoryAssignment {
  readonly entity: EntityRef;
  readonly categories: readonly CategoryLabel[];
}

/** Why an entity got its policy. */
export type ResolutionRule =
  /** Exactly one policy matched. */
  | 'only-match'
  /** Several matched; the highest priority decided. */
  | 'priority'
  /** Several matched at the top priority; the shortest RPO decided. */
  | 'shortest-rpo'
  /** Several matched with equal priority and RPO; the smallest id decided. */
  | 'policy-id'
  /** None matched; the default policy applies. */
  | 'default'
  /** None matched and there is no default policy. */
  | 'unprotected';

/** One entity's resolved policy. */
export interface PolicyResolution {
  readonly entity: EntityRef;
  readonly policy: CategoryPolicy | undefined;
  readonly rule: ResolutionRule;
  /** Ids of every policy whose categories matched, winner first. */
  readonly matchedPolicyIds: readonly string[];
  /** The entity's labels that matched the winning policy (`key:value`). */
  readonly matchedCategories: readonly string[];
  /** One sentence for an operator. */
  readonly description: string;
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Resolves the policy of every entity in `entities` (output in the same order).
 * Assignments for entities not in `entities` are ignored.
 * @throws INVALID_ARGUMENT for repeated entities, repeated assignments, or repeated policy ids
 */
export function resolvePolicies(
  entities: readonly EntityRef[],
  categoryAssignments: readonly CategoryAssignment[],
  policies: readonly CategoryPolicy[],
  defaultPolicy?: CategoryPolicy,
): PolicyResolution[] {
  const refs = list(entities, 'entities', checkEntityRef);
  unique(refs.map(entityKey), 'entities', 'entity');
  const labelsOf = new Map<string, string[]>();
  list(categoryAssignments, 'categoryAssignments', (a, af) => {
    const f = object(a, af, ['entity', 'categories']);
    const key = entityKey(checkEntityRef(f.entity, join(af, 'entity')));
    if (labelsOf.has(key)) invalid(join(af, 'entity'), `assigns categories to ${key} twice`, { entity: key });
    labelsOf.set(key, list(f.categories, join(af, 'categories'), checkCategoryLabel).map(categoryKey));
  });
  unique(policies.map((p) => p.id), 'policies', 'policy id');
  const byCategory = new Map<string, CategoryPolicy[]>();
  for (const p of policies) {
    for (const c of p.categories) {
      const key = categoryKey(c);
      byCategory.set(key, [...(byCategory.get(key) ?? []), p]);
    }
  }
  const rpoOf = new Map(policies.map((p) => [p.id, nominalRpoMs(p.schedule)]));

  return refs.map((entity): PolicyResolution => {
    const key = entityKey(entity);
    const labels = labelsOf.get(key) ?? [];
    const matched = new Map<string, CategoryPolicy>();
    for (const l of labels) for (const p of byCategory.get(l) ?? []) matched.set(p.id, p);
    if (matched.size === 0) {
      return defaultPolicy === undefined
        ? { entity, policy: undefined, rule: 'unprotected', matchedPolicyIds: [], matchedCategories: [], description: `${key} matches no policy and there is no default policy` }
        : { entity, policy: defaultPolicy, rule: 'default', matchedPolicyIds: [], matchedCategories: [], description: `${key} matches no policy; default policy '${defaultPolicy.id}' applies` };
    }
    const ranked = [...matched.values()].sort((a, b) => b.priority - a.priority || rpoOf.get(a.id)! - rpoOf.get(b.id)! || compareIds(a.id, b.id));
    const winner = ranked[0]!;
    const runnerUp = ranked[1];
    let rule: ResolutionRule = 'only-match';
    if (runnerUp !== undefined) {
      if (winner.priority !== runnerUp.priority) rule = 'priority';
      else if (rpoOf.get(winner.id) !== rpoOf.get(runnerUp.id)) rule = 'shortest-rpo';
      else rule = 'policy-id';
    }
    const winnerLabels = new Set(winner.categories.map(categoryKey));
    const matchedCategories = labels.filter((l) => winnerLabels.has(l));
    const why = {
      'only-match': 'the only matching policy',
      priority: `the highest priority (${winner.priority}) of ${ranked.length} matching policies`,
      'shortest-rpo': `the shortest RPO (${rpoOf.get(winner.id)} ms) among ${ranked.length} matching policies at priority ${winner.priority}`,
      'policy-id': `the smallest id among ${ranked.length} matching policies with equal priority and RPO`,
    }[rule];
    return {
      entity,
      policy: winner,
      rule,
      matchedPolicyIds: ranked.map((p) => p.id),
      matchedCategories,
      description: `${key} gets policy '${winner.id}' via ${matchedCategories.join(', ')}: ${why}`,
    };
  });
}
