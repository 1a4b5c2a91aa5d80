/**
 * The cross-PD rule: an entity belongs to at most one protection domain (two PDs
 * snapshotting and retaining one volume on different schedules would each delete the
 * other's replication bases). Checked over a whole configuration, which a single PD
 * cannot see.
 */
import { DrkitError } from '../core/errors.js';
import { entityKey, type EntityRef } from './entity-ref.js';
import type { ProtectionDomain } from './protection-domain.js';

/** One breach of the at-most-one-PD rule. */
export type MembershipViolation =
  | { readonly kind: 'entity-in-several-domains'; readonly entity: EntityRef; readonly domainIds: readonly string[] }
  | { readonly kind: 'container-in-several-domains'; readonly containerId: string; readonly domainIds: readonly string[] }
  | { readonly kind: 'entity-in-protected-container'; readonly entity: EntityRef; readonly domainId: string; readonly containerId: string; readonly containerDomainId: string };

/** Options of {@link findMembershipViolations}. */
export interface MembershipOptions {
  /** Container of each entity, when known, to catch an entity listed by one PD whose container another PD protects. */
  containerOf?: (entity: EntityRef) => string | undefined;
}

/**
 * Every violation of "an entity belongs to at most one PD" in `domains`, in a stable
 * order (by entity or container key). Empty when the configuration is valid.
 */
export function findMembershipViolations(domains: readonly ProtectionDomain[], options: MembershipOptions = {}): MembershipViolation[] {
  const byEntity = new Map<string, { entity: EntityRef; domainIds: string[] }>();
  const byContainer = new Map<string, string[]>();
  for (const d of domains) {
    if (d.protects.kind === 'container') {
      const list = byContainer.get(d.protects.containerId) ?? [];
      list.push(d.id);
      byContainer.set(d.protects.containerId, list);
      continue;
    }
    for (const e of d.protects.entities) {
      const key = entityKey(e);
      const entry = byEntity.get(key) ?? { entity: e, domainIds: [] };
      entry.domainIds.push(d.id);
      byEntity.set(key, entry);
    }
  }
  const out: MembershipViolation[] = [];
  for (const [, { entity, domainIds }] of [...byEntity].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (domainIds.length > 1) out.push({ kind: 'entity-in-several-domains', entity, domainIds });
    const containerId = options.containerOf?.(entity);
    const containerDomains = containerId === undefined ? undefined : byContainer.get(containerId);
    if (containerId !== undefined && containerDomains !== undefined) {
      for (const domainId of domainIds) out.push({ kind: 'entity-in-protected-container', entity, domainId, containerId, containerDomainId: containerDomains[0]! });
    }
  }
  for (const [containerId, domainIds] of [...byContainer].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (domainIds.length > 1) out.push({ kind: 'container-in-several-domains', containerId, domainIds });
  }
  return out;
}

/**
 * Throws when {@link findMembershipViolations} finds any.
 * @throws INVALID_ARGUMENT with `data.field = 'protectionDomains'` and `data.violations`
 */
export function assertUniqueMembership(domains: readonly ProtectionDomain[], options: MembershipOptions = {}): void {
  const violations = findMembershipViolations(domains, options);
  if (violations.length > 0) {
    throw new DrkitError('INVALID_ARGUMENT', `${violations.length} entity membership violation(s); first: ${violations[0]!.kind}`, {
      data: { field: 'protectionDomains', violations },
    });
  }
}
