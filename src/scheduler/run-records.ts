/**
 * The run records of one task as its owner reads and writes them: where to continue after a hand-over,
 * `missed` records (one per range of ticks, at the range's last tick, so the cursor of the next owner
 * starts after it), the single growing record of a pause, and history retention.
 *
 * Every write that stands for the owner (claims, missed records, marking an interrupted run) is guarded
 * by the lease: a zombie ex-owner's write is refused by the store (invariant 2).
 */
import { sleep, type Clock } from '../core/clock.js';
import { NotOwnerError, SessionExpiredError, toError } from '../core/errors.js';
import type { Lease } from '../cluster/lease.js';
import type { Store, StoredRecord } from '../stores/contract.js';
import type { Emit, MissReason } from './events.js';
import { runKey, runPrefix } from './keys.js';
import type { DueTicks } from './misfire.js';
import type { Schedule } from './schedule.js';
import type { RunRecord } from './task.js';
import type { TaskUnit } from './modes.js';
import type { UnitName } from './names.js';

/** What the record functions need: the unit, its store, and the lease they write under. */
export interface RecordsScope {
  readonly unit: TaskUnit;
  readonly store: Store;
  readonly clock: Clock;
  readonly emit: Emit;
  readonly lease: Lease;
  /** Aborts when the lease ends or the node shuts down: store retries stop then. */
  readonly stop: AbortSignal;
}

/** The single `missed` record (reason `paused`) that grows while the task stays paused. */
export interface PausedRange {
  readonly from: number;
  readonly count: number;
  readonly key: string;
}

/** Pause between attempts of a store call while the store is unreachable (the lease deadline bounds it). */
export const STORE_RETRY_MS = 200;
/** Newest run records read when a lease starts, to find the newest scheduled tick among trigger runs. */
const HISTORY_PEEK = 20;

/**
 * Retries a store call while the store is unreachable, the lease still holds and the node is not
 * shutting down (close() must not wait for the lease deadline, nor start a run once the store is back).
 */
export async function withStoreRetry<T>(scope: RecordsScope, call: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (error instanceof NotOwnerError || error instanceof SessionExpiredError || scope.stop.aborted) throw error;
      // Reported on the first failure, then every REPORT_EVERY attempts: an outage is one line per 5 s, not five a second.
      if (attempt % REPORT_EVERY === 0) scope.emit('error', { where: `task "${scope.unit.name}"`, error: toError(error) });
      await sleep(scope.clock, STORE_RETRY_MS, scope.stop);
    }
  }
}

/** Failed attempts of a store call between two reports of the failure (with STORE_RETRY_MS: 5 s). */
const REPORT_EVERY = 25;

/**
 * Where to continue: the newest scheduled tick recorded (trigger runs do not count), or now when the
 * task never ran (new tasks do not catch up; `freshCursor` when given), and when the newest run ended — except a single-tick schedule (`at`), whose tick is then
 * still due and goes through the misfire policy. Marks runs of earlier owners left `running` as aborted.
 */
export async function readHistory(
  scope: RecordsScope,
  schedule: Schedule,
  freshCursor?: number,
): Promise<{ cursor: number; paused: PausedRange | undefined; runEndedAt: number | undefined }> {
  const { lease, store, clock } = scope;
  lease.assertHeld();
  const prefix = runPrefix(scope.unit.name);
  let records = await store.list<RunRecord>(prefix, { reverse: true, limit: HISTORY_PEEK });
  for (const record of records) await markInterrupted(lease, record);
  let newest = records.find((r) => r.value.trigger !== true);
  if (!newest && records.length === HISTORY_PEEK) {
    records = await store.list<RunRecord>(prefix, { reverse: true });
    newest = records.find((r) => r.value.trigger !== true);
  }
  if (!newest) return { cursor: schedule.once !== undefined ? schedule.once - 1 : (freshCursor ?? clock.now()), paused: undefined, runEndedAt: undefined };
  const run = newest.value;
  const paused = run.status === 'missed' && run.missed?.reason === 'paused' ? { from: run.missed.from, count: run.missed.count, key: newest.key } : undefined;
  // Ticks due before the newest run ended fell due during it, whoever owns the task now.
  const runEndedAt = run.status !== 'missed' && run.status !== 'running' ? run.endedAt : undefined;
  return { cursor: run.tick, paused, runEndedAt };
}

async function markInterrupted(lease: Lease, record: StoredRecord<RunRecord>): Promise<void> {
  const run = record.value;
  if (run.status !== 'running' || run.token === undefined || BigInt(run.token) >= lease.token) return;
  // The previous owner died during this run: say so, instead of leaving it "running" forever.
  // The CAS on its version loses to the old owner's own end record if that one arrives first.
  // Claimed ahead (claim-ahead.ts): the owner may have lost the task before the handler's start.
  const when = run.claimedAt !== undefined ? 'during the run, or between its claim ahead and its start,' : 'during the run';
  const interrupted: RunRecord = {
    ...run,
    status: 'aborted',
    error: `interrupted: ${run.node ?? 'the owner'} lost the task ${when} (token ${run.token}; taken over with token ${lease.token})`,
  };
  await lease.put(record.key, interrupted, { ifVersion: record.version });
}

/** Records ticks `from`…`to` (`count` of them) as missed, in one record at `to`. */
export async function recordMissed(scope: RecordsScope, from: number, to: number, count: number, reason: MissReason, detail?: string): Promise<void> {
  const { lease, unit } = scope;
  const record: RunRecord = { task: unit.task, unit: unit.name, tick: to, status: 'missed', missed: { from, count, reason }, ...(detail ? { error: detail } : {}) };
  const result = await withStoreRetry(scope, () => lease.put(runKey(unit.name, to), record, { ifVersion: 'absent' }));
  if (result.ok) scope.emit('tick:missed', { task: unit.task, unit: unit.name, from, to, count, reason });
}

/**
 * Records ticks due while paused in one record: a new record at the newest paused tick replaces the
 * previous one (written first, so the cursor never moves back if the delete does not happen).
 */
export async function recordPaused(scope: RecordsScope, due: DueTicks, current: PausedRange | undefined): Promise<PausedRange> {
  const { lease, unit } = scope;
  const from = current?.from ?? due.first;
  const count = (current?.count ?? 0) + due.count;
  const key = runKey(unit.name, due.last);
  const record: RunRecord = { task: unit.task, unit: unit.name, tick: due.last, status: 'missed', missed: { from, count, reason: 'paused' } };
  const result = await withStoreRetry(scope, () => lease.put(key, record, { ifVersion: 'absent' }));
  if (!result.ok) return current ?? { from, count, key };
  if (current) await scope.store.delete(current.key, { guard: lease.guard });
  scope.emit('tick:missed', { task: unit.task, unit: unit.name, from: due.first, to: due.last, count: due.count, reason: 'paused' });
  return { from, count, key };
}

/** Keeps the newest `history` run records of the task. */
export async function pruneHistory(store: Store, emit: Emit, unit: UnitName, history: number): Promise<void> {
  const prefix = runPrefix(unit);
  try {
    const newest = await store.list(prefix, { reverse: true, limit: history + 1 });
    const oldestKept = newest[history - 1];
    if (newest.length > history && oldestKept) await store.deleteBefore(prefix, oldestKept.key);
  } catch (error) {
    emit('error', { where: `task "${unit}": history retention`, error: toError(error) });
  }
}
