/**
 * MetroRelation: a protection domain's synchronous (Metro) relation to one remote site
 * (seed: Metro Availability — a container stretched across two sites). A PD may be Metro
 * to one site and replicate asynchronously or NearSync to others: the Metro site is one
 * of the PD's `remoteSites` that no schedule of the PD replicates to (the mirror already
 * holds every acknowledged write there), and it is not storage-only (it must be able to
 * take over). Pure data; drkit/metro's MirroredVolume executes it.
 */
import { DEFAULT_LEASE_MS } from '../metro/index.js';
import { deepFreeze, id, integer, join, kindTag, object, oneOf, text } from './internal/fields.js';
import type { ProtectionDomain } from './protection-domain.js';

/** Longest lease a relation may ask for: 10 minutes (a takeover waits this long). */
export const MAX_METRO_LEASE_MS = 10 * 60 * 1000;

/** A PD's Metro relation. Frozen plain data. */
export interface MetroRelation {
  readonly kind: 'metro-relation';
  /** The remote site mirrored to (one of the PD's `remoteSites`). */
  readonly siteId: string;
  /** The witness of the pair ("host:port", a third host). */
  readonly witnessAddress: string;
  /** 'durable' (protocol C: acknowledged when durable at both sites) or 'received' (protocol B). */
  readonly mode: 'durable' | 'received';
  /** The lease the witness grants: how long a takeover after a site failure waits. */
  readonly leaseMs: number;
  /** The site that writes while both are up ('local' = this site). */
  readonly preferredSite: 'local' | 'remote';
}

/** Input of {@link createMetroRelation}. */
export interface MetroRelationSpec {
  kind?: 'metro-relation';
  siteId: string;
  witnessAddress: string;
  /** @defaultValue 'durable' */
  mode?: 'durable' | 'received';
  /** @defaultValue DEFAULT_LEASE_MS (5 s) */
  leaseMs?: number;
  /** @defaultValue 'local' */
  preferredSite?: 'local' | 'remote';
}

/** Validates and freezes a Metro relation. @throws INVALID_ARGUMENT with `data.field` */
export function createMetroRelation(spec: MetroRelationSpec, field = ''): MetroRelation {
  const f = object(spec, field, ['kind', 'siteId', 'witnessAddress', 'mode', 'leaseMs', 'preferredSite']);
  kindTag(f, field, 'metro-relation');
  return deepFreeze({
    kind: 'metro-relation',
    siteId: id(f.siteId, join(field, 'siteId')),
    witnessAddress: text(f.witnessAddress, join(field, 'witnessAddress'), true),
    mode: f.mode === undefined ? 'durable' : oneOf(f.mode, join(field, 'mode'), ['durable', 'received'] as const),
    leaseMs: f.leaseMs === undefined ? DEFAULT_LEASE_MS : integer(f.leaseMs, join(field, 'leaseMs'), 1, MAX_METRO_LEASE_MS),
    preferredSite: f.preferredSite === undefined ? 'local' : oneOf(f.preferredSite, join(field, 'preferredSite'), ['local', 'remote'] as const),
  });
}

/** What a domain protects by Metro: its relation and the entities it mirrors. */
export interface MetroProtection {
  readonly domainId: string;
  readonly relation: MetroRelation;
  /** The protected scope, mirrored as a whole to `relation.siteId` (RPO 0 while mirrored). */
  readonly protects: ProtectionDomain['protects'];
}

/** The Metro protection of `domain`, or undefined when it has no Metro relation. */
export function metroProtectionOf(domain: ProtectionDomain): MetroProtection | undefined {
  return domain.metro === undefined ? undefined : deepFreeze({ domainId: domain.id, relation: domain.metro, protects: domain.protects });
}
