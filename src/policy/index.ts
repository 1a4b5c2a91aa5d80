/**
 * drkit/policy: the seed's protection constructs as pure data and pure functions —
 * protection domains, consistency groups, schedules and their fire times, retention
 * policies and retention planning, remote sites, category policies and runbooks. Every
 * model is frozen, `kind`-tagged, validated on construction and serialisable to JSON.
 * The models and planners do no I/O; the {@link Protector} engine executes what they
 * plan (snapshots, replication, retention, RPO tracking) on an injected clock.
 * @packageDocumentation
 */
export {
  NEARSYNC_DEFAULT_THRESHOLD_MS,
  nearSyncStep,
  startNearSync,
  type NearSyncAction,
  type NearSyncEvent,
  type NearSyncLifecycleOptions,
  type NearSyncPhase,
  type NearSyncState,
  type NearSyncStep,
  type NearSyncTransition,
} from './nearsync-lifecycle.js';
export { ENTITY_KINDS, checkEntityRef, entityKey, type EntityKind, type EntityRef } from './entity-ref.js';
export { createMetroRelation, metroProtectionOf, MAX_METRO_LEASE_MS, type MetroRelation, type MetroRelationSpec, type MetroProtection } from './metro-relation.js';
export { createRemoteSite, replicationRemoteOf, type RemoteConnection, type RemoteSite, type RemoteSiteOptions, type RemoteSiteSpec } from './remote-site.js';
export {
  MAX_RETENTION_COUNT,
  RETENTION_UNITS,
  checkTimeZone,
  createRetentionPolicy,
  remoteRuleFor,
  type RemoteRetention,
  type RetentionPolicy,
  type RetentionPolicySpec,
  type RetentionRule,
  type RetentionRuleSpec,
  type RetentionTier,
  type RetentionUnit,
} from './retention-policy.js';
export {
  MAX_INTERVAL_MS,
  NEAR_SYNC_MAX_INTERVAL_MS,
  WEEKDAYS,
  createSchedule,
  intervalMs,
  nominalRpoMs,
  parseTimeOfDay,
  type DailyRecurrence,
  type IntervalRecurrence,
  type MonthlyRecurrence,
  type Recurrence,
  type Schedule,
  type ScheduleSpec,
  type WeeklyRecurrence,
  type Weekday,
} from './schedule.js';
export { DEFAULT_MAX_FIRE_TIMES, fireTimesBetween, latestDueFireMs, nextFireMs, previousFireMs } from './schedule-math.js';
export { createConsistencyGroup, type Consistency, type ConsistencyGroup, type ConsistencyGroupSpec } from './consistency-group.js';
export {
  MAX_REMOTE_SITES_PER_DOMAIN,
  MAX_SCHEDULES_PER_DOMAIN,
  createProtectionDomain,
  snapshotUnits,
  type ProtectedScope,
  type ProtectionDomain,
  type ProtectionDomainSpec,
} from './protection-domain.js';
export { assertUniqueMembership, findMembershipViolations, type MembershipOptions, type MembershipViolation } from './membership-violations.js';
export {
  MAX_CATEGORIES_PER_POLICY,
  categoryKey,
  checkCategoryLabel,
  createCategoryPolicy,
  type CategoryLabel,
  type CategoryPolicy,
  type CategoryPolicySpec,
} from './category-policy.js';
export { resolvePolicies, type CategoryAssignment, type PolicyResolution, type ResolutionRule } from './resolve-policies.js';
export {
  MAX_STAGES,
  MAX_STAGE_DELAY_MS,
  createRunbook,
  effectiveOptions,
  type RecoveryMode,
  type Runbook,
  type RunbookEntity,
  type RunbookEntityOptions,
  type RunbookSpec,
  type RunbookStage,
} from './runbook.js';
export { dryRun, type DryRunContext, type DryRunResult, type RecoveryPoint, type RunbookStep } from './dry-run.js';
export {
  MAX_PLANNED_SNAPSHOTS,
  planRemoteRetention,
  planRetention,
  type KeepReason,
  type RetentionContext,
  type RetentionPlan,
  type RetentionSnapshot,
} from './plan-retention.js';
export { composedRetention, type PruneComposed } from './composed-retention.js';
export { POLICY_FORMAT_VERSION, fromPolicyJSON, toPolicyJSON, type PolicyModel, type PolicyModelOfKind } from './policy-json.js';
export { Protector, MAX_PENDING_PER_SITE, type SnapshotNowOptions } from './protector.js';
export { DEFAULT_PROTECTOR_CONCURRENCY, type ProtectorOptions } from './protector-options.js';
export type { PendingReplication, ProtectorEvent, ProtectorEventKind, RpoStatus } from './protector-event.js';
export { listRestorePoints, type ListRestorePointsOptions, type RecoveryResolvers, type RestorePoint, type RestorePointConsistency, type RestorePointMember } from './list-restore-points.js';
export { restoreDomain, type RestoreDomainOptions, type RecoveredEntity, type RecoveredVolume, type RecoveryReport } from './restore-domain.js';
export { cloneDomain, MAX_CLONE_PREFIX_CHARS, type CloneDomainOptions } from './clone-domain.js';
export { NearSyncEngine, NEARSYNC_DEFAULT_LWS_INTERVAL_MS, type NearSyncEngineOptions, type NearSyncEngineEvent } from './nearsync-engine.js';
