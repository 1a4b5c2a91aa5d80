/**
 * JSON form of the policy models: the model's own fields plus `formatVersion`. Reading
 * re-validates everything through the model's constructor, so a hand-edited or
 * corrupted file fails with a coded error naming the field, never half-loads.
 */
import { DrkitError } from '../core/errors.js';
import { createCategoryPolicy, type CategoryPolicy, type CategoryPolicySpec } from './category-policy.js';
import { createConsistencyGroup, type ConsistencyGroup, type ConsistencyGroupSpec } from './consistency-group.js';
import { invalid } from './internal/fields.js';
import { createProtectionDomain, type ProtectionDomain, type ProtectionDomainSpec } from './protection-domain.js';
import { createRemoteSite, type RemoteSite, type RemoteSiteSpec } from './remote-site.js';
import { createRetentionPolicy, type RetentionPolicy, type RetentionPolicySpec } from './retention-policy.js';
import { createRunbook, type Runbook, type RunbookSpec } from './runbook.js';
import { createSchedule, type Schedule, type ScheduleSpec } from './schedule.js';

/** Version of the JSON form this build writes and reads. */
export const POLICY_FORMAT_VERSION = 1;

/** Every serialisable policy model. */
export type PolicyModel = ProtectionDomain | ConsistencyGroup | Schedule | RetentionPolicy | RemoteSite | CategoryPolicy | Runbook;

/** The model of a given `kind`. */
export type PolicyModelOfKind<K extends PolicyModel['kind']> = Extract<PolicyModel, { kind: K }>;

const CONSTRUCTORS: { readonly [K in PolicyModel['kind']]: (spec: never) => PolicyModelOfKind<K> } = {
  'protection-domain': (s: ProtectionDomainSpec) => createProtectionDomain(s),
  'consistency-group': (s: ConsistencyGroupSpec) => createConsistencyGroup(s),
  schedule: (s: ScheduleSpec) => createSchedule(s),
  'retention-policy': (s: RetentionPolicySpec) => createRetentionPolicy(s),
  'remote-site': (s: RemoteSiteSpec) => createRemoteSite(s),
  'category-policy': (s: CategoryPolicySpec) => createCategoryPolicy(s),
  runbook: (s: RunbookSpec) => createRunbook(s),
};

/** Serialises a model: `{"formatVersion":1,"kind":...}`. */
export function toPolicyJSON(model: PolicyModel): string {
  return JSON.stringify({ formatVersion: POLICY_FORMAT_VERSION, ...model });
}

/**
 * Parses and validates a model written by {@link toPolicyJSON}. With `expectedKind`,
 * any other kind is refused.
 * @throws FORMAT_VERSION for a missing or unknown `formatVersion`; INVALID_ARGUMENT for
 *   bad JSON, an unknown or unexpected `kind`, or any invalid field (`data.field`)
 */
export function fromPolicyJSON<K extends PolicyModel['kind'] = PolicyModel['kind']>(json: string, expectedKind?: K): PolicyModelOfKind<K> {
  if (typeof json !== 'string') invalid('json', 'must be a string');
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new DrkitError('INVALID_ARGUMENT', 'policy JSON does not parse', { cause: err, data: { field: 'json' } });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) invalid('json', 'must hold a JSON object');
  const { formatVersion, ...fields } = value as Record<string, unknown>;
  if (formatVersion !== POLICY_FORMAT_VERSION) {
    throw new DrkitError('FORMAT_VERSION', `policy format version ${String(formatVersion)} is not readable by this build (reads ${POLICY_FORMAT_VERSION})`, {
      data: { field: 'formatVersion', formatVersion: String(formatVersion), supported: [POLICY_FORMAT_VERSION] },
    });
  }
  const kind = fields.kind;
  if (typeof kind !== 'string' || !Object.hasOwn(CONSTRUCTORS, kind)) invalid('kind', `is not a policy model kind: ${String(kind)}`, { value: String(kind) });
  if (expectedKind !== undefined && kind !== expectedKind) invalid('kind', `is '${kind}', expected '${expectedKind}'`, { value: kind });
  const construct = CONSTRUCTORS[kind as K] as unknown as (spec: unknown) => PolicyModelOfKind<K>;
  return construct(fields);
}
