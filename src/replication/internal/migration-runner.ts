/**
 * The one step loop of migrations (single lineage and consistency group): before a step
 * its start is recorded, after it its completion — each write synced — so a crash leaves
 * the last completed step on record and a resume reruns the started one (steps are
 * idempotent). A failure is recorded as `lastError` and rethrown with its code,
 * `data.state: 'resumable'` and `data.step` (the step a resume starts at).
 */
import { DrkitError, throwIfAborted, toDrkitError } from '../../core/errors.js';
import { MIGRATION_STEPS, MIGRATION_STEP_INDEX, type MigrationStepKind } from './migration-record.js';

/** What the loop reads and writes of a migration record. */
export interface StepState {
  readonly status: 'running' | 'completed' | 'rolled-back';
  readonly completedSteps: number;
  readonly startedStep?: MigrationStepKind | undefined;
  readonly lastError?: { readonly code: string; readonly message: string } | undefined;
}

/** How one kind of migration runs its steps. */
export interface StepRunner<R extends StepState> {
  /** Durably records `record` (synced). */
  write(record: R): Promise<void>;
  /** Runs `step`; resolves with the fields it produced. */
  run(step: MigrationStepKind, record: R): Promise<Partial<R>>;
  /** `record` sent back to retake the final snapshot (a write after the stop was found). */
  restartFromFinalSnapshot(record: R): R;
  /** After a step's completion is durable (a throw stops the migration there). */
  afterStep?(step: MigrationStepKind, record: R): void | Promise<void>;
  /** Names the migration in messages ("migration of X") and in `data`. */
  readonly what: string;
  readonly resumeWith: string;
  readonly data: Readonly<Record<string, unknown>>;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Runs the steps of `start` from its first one not completed, to the end.
 * @throws the failing step's code, with `data.state` and `data.step`
 */
export async function runMigrationSteps<R extends StepState>(start: R, runner: StepRunner<R>): Promise<R> {
  let record = start;
  while (record.completedSteps < MIGRATION_STEPS.length) {
    const step = MIGRATION_STEPS[record.completedSteps]!;
    try {
      throwIfAborted(runner.signal);
      record = { ...record, startedStep: step };
      await runner.write(record);
      const produced = await runner.run(step, record);
      const completedSteps = record.completedSteps + 1;
      const done: R = { ...record, ...produced, completedSteps, startedStep: undefined, lastError: undefined, status: completedSteps === MIGRATION_STEPS.length ? 'completed' : 'running' };
      await runner.write(done);
      // Only a durable record counts: a failed write leaves the step to be rerun (steps are idempotent).
      record = done;
      await runner.afterStep?.(step, record);
    } catch (err) {
      const e = toDrkitError(err, 'INTERNAL', `${runner.what}: step ${step} failed`);
      if (e.data.restartFromFinalSnapshot === true) record = runner.restartFromFinalSnapshot({ ...record, completedSteps: MIGRATION_STEP_INDEX['final-snapshot'] });
      const nextStep = MIGRATION_STEPS[record.completedSteps] ?? step;
      try {
        await runner.write({ ...record, lastError: { code: e.code, message: e.message } });
      } catch {
        // The store failed too (a crash): the record of the last completed step still stands.
      }
      throw new DrkitError(e.code, `${runner.what} stopped before step ${nextStep} (${runner.resumeWith} continues it): ${e.message}`, {
        cause: e,
        transient: e.transient,
        data: { ...e.data, ...runner.data, state: record.status === 'completed' ? 'completed' : 'resumable', step: nextStep },
      });
    }
  }
  return record;
}
