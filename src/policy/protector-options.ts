/** Options of the Protector engine, validated up front. */
import { DrkitError } from '../core/errors.js';
import { assertNonNegativeInteger, assertPositiveInteger } from '../core/validate.js';
import type { Clock } from '../adapters/clock.js';
import type { MetaStore } from '../adapters/meta-store.js';
import type { Site } from '../replication/index.js';
import type { QuiesceHooks } from '../snapshot/index.js';
import type { EntityRef } from './entity-ref.js';
import type { ProtectionDomain } from './protection-domain.js';
import type { ProtectorEvent } from './protector-event.js';
import type { RemoteConnection, RemoteSite } from './remote-site.js';
import { defaultVolumesOf } from './internal/resolve-units.js';

/**
 * Transfers and domain passes at once: 4. Each transfer already pipelines 4 batches of
 * up to 4 MiB (~16 MiB in flight), so 4 bound replication memory near 64 MiB; a few
 * connections fill a WAN link, and one slow site cannot hold up every domain.
 */
export const DEFAULT_PROTECTOR_CONCURRENCY = 4;

/** Options of {@link Protector.open}. */
export interface ProtectorOptions {
  /** The local site: its tree is snapshotted, it replicates to `remotes`. */
  site: Site;
  /** Drives schedules, retries and RPO; a VirtualClock in simulations. */
  clock: Clock;
  /** Where engine state lives (usually the site's MetaStore). */
  meta: MetaStore;
  /** Key prefix of engine state in `meta`. @defaultValue 'protector/' */
  keyPrefix?: string;
  /**
   * Resolves a configured remote site (a domain's `remoteSites` entry; its
   * `credentialsRef` names the credentials) to a transport and secrets. Called once per
   * site when a domain naming it is added or loaded; what it throws fails that call.
   * Address, proxy, bandwidth cap and storage-only come from the site itself.
   */
  connectionFor: (site: RemoteSite) => RemoteConnection;
  /** Transfers at once, and domains serviced at once in a pass. @defaultValue {@link DEFAULT_PROTECTOR_CONCURRENCY} */
  concurrency?: number;
  /** Called synchronously with every event; exceptions it throws are ignored. */
  onEvent?: (event: ProtectorEvent) => void;
  /** Volume ids of an entity. @defaultValue a volume entity's id is the volume id; other kinds fail NOT_SUPPORTED */
  volumesOf?: (entity: EntityRef, domain: ProtectionDomain) => readonly string[];
  /** Volume ids in a container (whole-container domains). @defaultValue none: such domains fail to fire */
  containerVolumes?: (containerId: string, domain: ProtectionDomain) => readonly string[];
  /** Quiesce hooks of an application-consistent group; without them its snapshots fall back to crash consistency and say so. */
  quiesce?: (domainId: string, groupId: string) => QuiesceHooks | undefined;
  /** Deadline of preFreeze. @defaultValue 30000 */
  quiesceTimeoutMs?: number;
  /**
   * Age beyond the RPO target tolerated before a breach is reported: a snapshot must be
   * taken and shipped, so a site is always a little older than the interval just before
   * each replication lands. @defaultValue a tenth of the target (6 min for hourly, 2.4 h for daily)
   */
  rpoGraceMs?: number;
  /** Site.replicate's own retries within one engine attempt. @defaultValue 3 */
  transferRetries?: number;
  /** First backoff of those retries. @defaultValue 500 */
  transferRetryDelayMs?: number;
  /** First delay before the engine retries a failed replication; doubles per failure. @defaultValue 60000 */
  retryDelayMs?: number;
  /** Cap of that delay: after an outage heals, replication resumes within this. @defaultValue 900000 (15 min) */
  maxRetryDelayMs?: number;
  /**
   * NearSync for schedules of 15 minutes or less (`nearSyncEligible`): when the site's
   * tree has a write log, each such (domain, remote site) runs a {@link NearSyncEngine}
   * — seeds, then LWS every `lwsIntervalMs` — instead of replicating that schedule's
   * snapshots to the site (the target composes full snapshots itself), and the RPO
   * report counts the newest LWS valid there. `false`: snapshots replicate as for any
   * schedule (the opt-out).
   * @defaultValue `{}`: on, with the engine's defaults (NEARSYNC_DEFAULT_LWS_INTERVAL_MS, NEARSYNC_DEFAULT_THRESHOLD_MS)
   */
  nearSync?: false | { readonly lwsIntervalMs?: number; readonly thresholdMs?: number };
}

/** Validated options with defaults filled in. @throws INVALID_ARGUMENT */
export function checkProtectorOptions(o: ProtectorOptions) {
  if (typeof o !== 'object' || o === null) throw new DrkitError('INVALID_ARGUMENT', 'options must be an object');
  for (const f of ['site', 'clock', 'meta'] as const) {
    if (typeof o[f] !== 'object' || o[f] === null) throw new DrkitError('INVALID_ARGUMENT', `options.${f} is required`, { data: { field: f } });
  }
  if (typeof o.connectionFor !== 'function') throw new DrkitError('INVALID_ARGUMENT', 'options.connectionFor is required', { data: { field: 'connectionFor' } });
  const concurrency = o.concurrency ?? DEFAULT_PROTECTOR_CONCURRENCY;
  assertPositiveInteger(concurrency, 'concurrency');
  const quiesceTimeoutMs = o.quiesceTimeoutMs ?? 30_000;
  assertPositiveInteger(quiesceTimeoutMs, 'quiesceTimeoutMs');
  const transferRetries = o.transferRetries ?? 3;
  assertNonNegativeInteger(transferRetries, 'transferRetries');
  const transferRetryDelayMs = o.transferRetryDelayMs ?? 500;
  assertNonNegativeInteger(transferRetryDelayMs, 'transferRetryDelayMs');
  const retryDelayMs = o.retryDelayMs ?? 60_000;
  assertPositiveInteger(retryDelayMs, 'retryDelayMs');
  const maxRetryDelayMs = o.maxRetryDelayMs ?? 900_000;
  assertPositiveInteger(maxRetryDelayMs, 'maxRetryDelayMs');
  if (o.rpoGraceMs !== undefined) assertNonNegativeInteger(o.rpoGraceMs, 'rpoGraceMs');
  const keyPrefix = o.keyPrefix ?? 'protector/';
  if (typeof keyPrefix !== 'string') throw new DrkitError('INVALID_ARGUMENT', 'keyPrefix must be a string', { data: { field: 'keyPrefix' } });
  const rpoGraceMs = o.rpoGraceMs;
  return {
    site: o.site, clock: o.clock, meta: o.meta, connectionFor: o.connectionFor, keyPrefix, concurrency, onEvent: o.onEvent,
    volumesOf: o.volumesOf ?? defaultVolumesOf, containerVolumes: o.containerVolumes, quiesce: o.quiesce, quiesceTimeoutMs,
    graceMs: (targetMs: number) => rpoGraceMs ?? Math.floor(targetMs / 10),
    transferRetries, transferRetryDelayMs, retryDelayMs, maxRetryDelayMs,
    nearSync: o.nearSync === false ? undefined : (o.nearSync ?? {}),
  };
}
