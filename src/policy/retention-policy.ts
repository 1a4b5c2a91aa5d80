/**
 * RetentionPolicy: how many restore points to keep locally and at each remote site
 * (seed: "Retention Policy"), as keep-last-N, calendar tiers (24 hourly + 30 daily +
 * 12 monthly), or both. {@link planRetention} applies it.
 */
import { deepFreeze, id, integer, invalid, join, kindTag, list, object, oneOf, text, unique } from './internal/fields.js';
import { isKnownTimeZone } from './internal/zoned-time.js';

/** Calendar unit of a retention tier, bucketed in the policy's time zone (weeks start on Monday). */
export type RetentionUnit = 'hour' | 'day' | 'week' | 'month' | 'year';

/** The retention units, shortest first. */
export const RETENTION_UNITS: readonly RetentionUnit[] = Object.freeze(['hour', 'day', 'week', 'month', 'year']);

/**
 * Largest keep-last count or tier count: 100,000 — a restore point every minute for
 * two months; more is a configuration mistake, and the bound keeps planning cheap.
 */
export const MAX_RETENTION_COUNT = 100_000;

/** "Keep the newest restore point in each of the last `count` calendar `unit`s". */
export interface RetentionTier {
  readonly unit: RetentionUnit;
  readonly count: number;
}

/** One side's rule: the newest `keepLast` restore points, plus the tiers. */
export interface RetentionRule {
  /** @defaultValue 0 */
  readonly keepLast: number;
  /** At most one tier per unit. @defaultValue [] */
  readonly tiers: readonly RetentionTier[];
}

/** The rule for one remote site. */
export interface RemoteRetention {
  readonly siteId: string;
  readonly rule: RetentionRule;
}

/** A retention policy. Frozen plain data. */
export interface RetentionPolicy {
  readonly kind: 'retention-policy';
  readonly local: RetentionRule;
  /** Per remote site; a site replicated to but absent here keeps by the local rule. */
  readonly remote: readonly RemoteRetention[];
  /** IANA zone whose calendar the tiers' buckets follow. @defaultValue 'UTC' */
  readonly timeZone: string;
}

/** Input form of a {@link RetentionRule}. */
export interface RetentionRuleSpec {
  keepLast?: number;
  tiers?: readonly RetentionTier[];
}

/** Input of {@link createRetentionPolicy}. */
export interface RetentionPolicySpec {
  kind?: 'retention-policy';
  local: RetentionRuleSpec;
  remote?: readonly { siteId: string; rule: RetentionRuleSpec }[];
  timeZone?: string;
}

/**
 * Validates an IANA time zone name.
 * @throws INVALID_ARGUMENT
 */
export function checkTimeZone(value: unknown, field: string): string {
  const zone = text(value, field, true);
  if (!isKnownTimeZone(zone)) invalid(field, `is not a time zone this runtime knows: '${zone}'`, { value: zone });
  return zone;
}

function checkRule(value: unknown, field: string): RetentionRule {
  const f = object(value, field, ['keepLast', 'tiers']);
  const keepLast = f.keepLast === undefined ? 0 : integer(f.keepLast, join(field, 'keepLast'), 0, MAX_RETENTION_COUNT);
  const tiers = f.tiers === undefined
    ? []
    : list(f.tiers, join(field, 'tiers'), (t, tf) => {
      const tier = object(t, tf, ['unit', 'count']);
      return { unit: oneOf(tier.unit, join(tf, 'unit'), RETENTION_UNITS), count: integer(tier.count, join(tf, 'count'), 1, MAX_RETENTION_COUNT) };
    }, RETENTION_UNITS.length);
  unique(tiers.map((t) => t.unit), join(field, 'tiers'), 'unit');
  // A rule that keeps nothing would delete every restore point: surely a mistake.
  if (keepLast === 0 && tiers.length === 0) invalid(field, 'keeps nothing: set keepLast > 0 or at least one tier');
  tiers.sort((a, b) => RETENTION_UNITS.indexOf(a.unit) - RETENTION_UNITS.indexOf(b.unit));
  return { keepLast, tiers };
}

/**
 * Validates and freezes a retention policy. Tiers are stored shortest unit first.
 * Whether each remote site is configured is checked where sites are known
 * ({@link createSchedule}, {@link createProtectionDomain}).
 * @throws INVALID_ARGUMENT with `data.field` naming the bad field
 */
export function createRetentionPolicy(spec: RetentionPolicySpec, field = ''): RetentionPolicy {
  const f = object(spec, field, ['kind', 'local', 'remote', 'timeZone']);
  kindTag(f, field, 'retention-policy');
  const remote = f.remote === undefined
    ? []
    : list(f.remote, join(field, 'remote'), (r, rf) => {
      const e = object(r, rf, ['siteId', 'rule']);
      return { siteId: id(e.siteId, join(rf, 'siteId')), rule: checkRule(e.rule, join(rf, 'rule')) };
    });
  unique(remote.map((r) => r.siteId), join(field, 'remote'), 'site');
  return deepFreeze({
    kind: 'retention-policy',
    local: checkRule(f.local, join(field, 'local')),
    remote,
    timeZone: f.timeZone === undefined ? 'UTC' : checkTimeZone(f.timeZone, join(field, 'timeZone')),
  });
}

/** The rule that governs restore points at `siteId`: its own, else the local rule. */
export function remoteRuleFor(policy: RetentionPolicy, siteId: string): RetentionRule {
  return policy.remote.find((r) => r.siteId === siteId)?.rule ?? policy.local;
}
