/**
 * The Protector's persisted state: one MetaStore record per protection domain holding
 * its definition and its engine state, written as one atomic put so definition and
 * state never disagree after a crash.
 *
 * Durability promise: every state change that must survive a crash (a recorded fire, a
 * queued or finished replication, a remote prune, a breach) is written with
 * `{ sync: true }` before the engine acts on it as done.
 */
import { DrkitError } from '../../core/errors.js';
import type { ProtectionDomain } from '../protection-domain.js';
import { fromPolicyJSON, toPolicyJSON } from '../policy-json.js';

/** Version of the record format; bumped on any incompatible change. */
export const PROTECTOR_STATE_VERSION = 1;

/** A replication waiting to be done (or retried): one snapshot unit to one site. */
export interface PendingItem {
  /** Stable identity: site and snapshot ids. */
  readonly key: string;
  readonly siteId: string;
  /** The schedule that took it; null for an ad-hoc snapshot. */
  readonly scheduleId: string | null;
  readonly unitKey: string;
  readonly snapshotIds: readonly string[];
  readonly volumeIds: readonly string[];
  readonly createdMs: number;
  /** Local group id of a consistency-group unit (members are kept or pruned together). */
  readonly groupKey: string | null;
  attempts: number;
  nextAttemptMs: number;
}

/** One of our snapshots known complete at a remote site (by its local id). */
export interface CatalogEntry {
  readonly snapshotId: string;
  readonly volumeId: string;
  readonly scheduleId: string | null;
  readonly unitKey: string;
  readonly createdMs: number;
  readonly groupKey: string | null;
}

/** Engine state of one protection domain. */
export interface DomainState {
  /** When the engine started protecting the domain: the RPO clock of a site with nothing yet. */
  addedMs: number;
  /** Per schedule id: the last fire instant recorded (taken, or attempted and given up). */
  lastFireMs: Record<string, number>;
  /** Replications to do, in the order they were queued. */
  pending: PendingItem[];
  /** Per site id: our snapshots complete there. */
  catalog: Record<string, CatalogEntry[]>;
  /** Per site id with a breached RPO: since when. */
  breachedSinceMs: Record<string, number>;
}

interface DomainRecord {
  readonly formatVersion: number;
  readonly domain: string;
  readonly state: DomainState;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Key of a domain's record. */
export function domainKey(keyPrefix: string, domainId: string): Uint8Array {
  return encoder.encode(`${keyPrefix}d/${domainId}`);
}

/** Prefix of every domain record. */
export function domainPrefix(keyPrefix: string): Uint8Array {
  return encoder.encode(`${keyPrefix}d/`);
}

/** Serialises a domain and its state. */
export function encodeDomainRecord(domain: ProtectionDomain, state: DomainState): Uint8Array {
  const record: DomainRecord = { formatVersion: PROTECTOR_STATE_VERSION, domain: toPolicyJSON(domain), state };
  return encoder.encode(JSON.stringify(record));
}

/**
 * Reads a record written by {@link encodeDomainRecord}.
 * @throws FORMAT_VERSION for an unknown version; CORRUPTION for a record that does not parse
 */
export function decodeDomainRecord(bytes: Uint8Array): { domain: ProtectionDomain; state: DomainState } {
  let record: DomainRecord;
  try {
    record = JSON.parse(decoder.decode(bytes)) as DomainRecord;
  } catch (err) {
    throw new DrkitError('CORRUPTION', 'protector domain record does not parse', { cause: err });
  }
  if (record.formatVersion !== PROTECTOR_STATE_VERSION) {
    throw new DrkitError('FORMAT_VERSION', `protector record version ${String(record.formatVersion)} is not readable by this build`, {
      data: { formatVersion: String(record.formatVersion), supported: [PROTECTOR_STATE_VERSION] },
    });
  }
  const s = record.state;
  if (typeof s !== 'object' || s === null || !Array.isArray(s.pending) || typeof s.lastFireMs !== 'object' || typeof s.catalog !== 'object') {
    throw new DrkitError('CORRUPTION', 'protector domain record has a malformed state');
  }
  return { domain: fromPolicyJSON(record.domain, 'protection-domain'), state: { ...s, breachedSinceMs: s.breachedSinceMs ?? {} } };
}

/** A fresh state for a domain added at `nowMs`. */
export function newDomainState(nowMs: number): DomainState {
  return { addedMs: nowMs, lastFireMs: {}, pending: [], catalog: {}, breachedSinceMs: {} };
}
