/**
 * drkit/replication: sites, and fingerprint-deduplicated, compressed, verified,
 * resumable replication of snapshots and consistency groups between them.
 * @packageDocumentation
 */
export { Site, type SiteOptions, type RemoteSite, type SiteTransferOptions } from './site.js';
export { replicateSnapshots, sessionIdOf, BATCH_BLOCKS, PIPELINE_BATCHES, type ReplicateOptions, type ReplicationProgress, type ReplicationResult, type SenderContext } from './sender.js';
export { ReceiverState, STAGING_PREFIX } from './receiver-state.js';
export {
  DEFAULT_RESTORE_VERIFY_WORKERS,
  fileRestoreCheckpoints,
  memoryRestoreCheckpoints,
  type DeviceRestoreOptions,
  type DeviceRestoreResult,
  type RestoreProgress,
  type RestoreCheckpoint,
  type RestoreCheckpointStore,
} from './device-restore.js';
export type { ReplicationPort, BeginRequest, BeginResponse, HeldSnapshot, WireBlock, WireExtent } from './replication-port.js';
export { originOf, originKey, volumeKeyOf, generationOf, ORIGIN_SITE_KEY, ORIGIN_SNAPSHOT_KEY, ORIGIN_VOLUME_KEY, LINEAGE_KEY, GENERATION_KEY, type SnapshotOrigin } from './origin.js';
export { Throttle } from './throttle.js';
export { startRelay, DEFAULT_RELAY_MAX_CONNECTIONS, type Relay, type RelayOptions, type RelayStats } from './relay.js';
export { promote, failover, failback, demote, snapshotPromoted, lineageStatus, type PromoteOptions, type Promotion, type FailbackOptions, type FailbackResult } from './failover.js';
export { detectSplitBrain, type SplitBrainReport, type SplitBrainSurvey } from './split-brain.js';
export { checkTransferGenerations, type GenerationStatus } from './generation-guard.js';
export type { RemoteLineageStatus, RemotePromotion, RemotePromotionResult, RemoteDemotion, RemoteDemotionResult } from './remote-control.js';
export type { LineageStatus, LineageRecord } from './lineage-record.js';
export { planMigration, migrate, resumeMigration, rollbackMigration, readMigration, MIGRATION_STEPS, MIGRATION_RECORD_PREFIX, type MigrationOptions, type MigrationPlan, type MigrationStep, type MigrateRunOptions, type MigrationResult, type MigrationRecord, type MigrationStepKind } from './migrate.js';
export { migrateGroup, resumeGroupMigration, rollbackGroupMigration, readGroupMigration, MAX_GROUP_MEMBERS, GROUP_MIGRATION_RECORD_PREFIX, type GroupMigrationOptions, type GroupMigrateRunOptions, type GroupMigrationResult, type GroupMigrationRecord, type GroupMigrationMember } from './migrate-group.js';
export { LwsJournal, type LwsBase, type LwsSessionState, type LwsPoint, type LwsClone } from './lws-journal.js';
export { LwsShipper, MAX_LWS_BATCHES_IN_FLIGHT, LWS_BATCH_TARGET_BYTES, type LwsShipResult, type LwsSessionOptions, type LwsShipperContext } from './lws-shipper.js';
export { startLwsComposer, LWS_DEFAULT_COMPOSE_EVERY_MS, LWS_DEFAULT_RETENTION_MS, type LwsComposer, type LwsComposerOptions } from './lws-composer.js';
