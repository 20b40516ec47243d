/**
 * A task's run history read from the store, for people: newest first, filtered by outcome, node and
 * time, in pages joined by an opaque cursor. Shared by the monitor's `GET /api/runs` and the CLI's
 * `baton history` / `baton logs`, so both page and filter alike.
 *
 * Guarantees: a page holds no run of an earlier page (the cursor is a position in the order
 * `tick` desc, then run id desc, which every store keeps, since run keys are zero-padded ticks); runs
 * written after the first page was read appear on a new first page, not in the middle of a walk.
 * Non-guarantees: the store lists a prefix from its newest key only (no range reads in the store port), so
 * each page re-reads the unit's records newer than the cursor; its cost grows with the depth of the walk,
 * bounded by the task's `history` retention (default 100 runs per unit).
 */
import { ConfigError } from '../core/errors.js';
import type { Store } from '../stores/contract.js';
import type { RunOutcome } from '../scheduler/events.js';
import { runPrefix } from '../scheduler/keys.js';
import type { UnitName } from '../scheduler/names.js';
import type { RunRecord } from '../scheduler/task.js';

export type RunStatus = RunOutcome | 'running' | 'missed';
export const RUN_STATUSES: readonly RunStatus[] = ['running', 'succeeded', 'failed', 'timed-out', 'aborted', 'missed'];

/** A run record with its id: `<unit>/<tick>` or, for a triggered run, `<unit>/<trigger id>`. */
export type HistoryRun = RunRecord & { readonly id: string };

export interface RunHistoryQuery {
  /** The units read (a task's units, or one). */
  readonly units: readonly UnitName[];
  /** Runs per page, 1 or more. */
  readonly limit: number;
  /** The `next` of the previous page: only runs after it (older). */
  readonly cursor?: string;
  /** Only runs with one of these statuses. */
  readonly statuses?: ReadonlySet<RunStatus>;
  /** Only runs of this node: its id, `host:pid`, or host. */
  readonly node?: string;
  /** Only runs with `tick` ≥ this (ms since the epoch). */
  readonly from?: number;
  /** Only runs with `tick` < this (ms since the epoch). */
  readonly to?: number;
}

export interface RunHistoryPage {
  readonly runs: HistoryRun[];
  /** The cursor of the next page; absent when this page is the last. */
  readonly next?: string;
}

interface Position {
  readonly tick: number;
  readonly id: string;
}

const TICK_DIGITS = 15;

/** The id of the run stored under `key` (its unit's prefix removed, the tick's padding dropped). */
function idOfKey(unit: UnitName, key: string): string {
  const suffix = key.slice(runPrefix(unit).length);
  return `${unit}/${suffix.replace(/^0+(?=\d)/, '')}`;
}

/** The store key of a run id. @throws ConfigError for a string that cannot be a run id. */
export function runKeyOfId(id: string): { unit: UnitName; key: string } {
  const slash = id.lastIndexOf('/');
  const match = /^(\d{1,15})(-[A-Za-z0-9]+)?$/.exec(id.slice(slash + 1));
  if (slash <= 0 || !match) throw new ConfigError(`run id: expected <unit>/<tick> or <unit>/<trigger id>, got ${JSON.stringify(id)}`);
  const unit = id.slice(0, slash) as UnitName;
  return { unit, key: `${runPrefix(unit)}${(match[1] as string).padStart(TICK_DIGITS, '0')}${match[2] ?? ''}` };
}

/** One run by its id, or undefined when the store has no such record (pruned, or never written). */
export async function readRun(store: Store, id: string): Promise<HistoryRun | undefined> {
  const { key } = runKeyOfId(id);
  const record = await store.get<RunRecord>(key);
  return record ? { ...record.value, id } : undefined;
}

function encodeCursor(position: Position): string {
  return Buffer.from(JSON.stringify([position.tick, position.id])).toString('base64url');
}

/** @throws ConfigError for a cursor this module did not write. */
export function decodeCursor(cursor: string): Position {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && Number.isSafeInteger(value[0]) && typeof value[1] === 'string') {
      return { tick: value[0] as number, id: value[1] };
    }
  } catch {
    // Reported below as the same error as a well-formed but foreign value.
  }
  throw new ConfigError(`cursor: not a cursor of this API (pass the "next" of the previous page as given), got ${JSON.stringify(cursor)}`);
}

/** Newest first: by tick, then by id (a trigger and a scheduled tick may share a millisecond). */
function newerFirst(a: Position, b: Position): number {
  return b.tick - a.tick || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

function matches(run: RunRecord, query: RunHistoryQuery): boolean {
  if (query.statuses && !query.statuses.has(run.status)) return false;
  if (query.from !== undefined && run.tick < query.from) return false;
  if (query.to !== undefined && run.tick >= query.to) return false;
  if (query.node !== undefined) {
    const { node, host, pid } = run;
    if (node !== query.node && host !== query.node && `${host}:${pid}` !== query.node) return false;
  }
  return true;
}

/** One page of the history of `query.units`, newest first. */
export async function readRunHistory(store: Store, query: RunHistoryQuery): Promise<RunHistoryPage> {
  if (!Number.isInteger(query.limit) || query.limit < 1) throw new ConfigError(`run history: limit must be a positive integer, got ${query.limit}`);
  const after = query.cursor !== undefined ? decodeCursor(query.cursor) : undefined;
  // One more than a page per unit tells whether another page exists.
  const wanted = query.limit + 1;
  const perUnit = await Promise.all(query.units.map((unit) => readUnit(store, unit, wanted, after, query)));
  const merged = perUnit.flat().sort(newerFirst);
  const runs = merged.slice(0, query.limit);
  const last = runs.at(-1);
  return merged.length > query.limit && last ? { runs, next: encodeCursor(last) } : { runs };
}

/**
 * Up to `wanted` matching runs of one unit after the cursor. Reads the newest records first and twice as
 * many each time until enough match or the unit's history ends (or falls before `from`).
 */
async function readUnit(store: Store, unit: UnitName, wanted: number, after: Position | undefined, query: RunHistoryQuery): Promise<HistoryRun[]> {
  for (let batch = wanted; ; batch *= 2) {
    const records = await store.list<RunRecord>(runPrefix(unit), { reverse: true, limit: batch });
    const found: HistoryRun[] = [];
    for (const record of records) {
      const run: HistoryRun = { ...record.value, id: idOfKey(unit, record.key) };
      if (after && newerFirst(run, after) <= 0) continue;
      if (matches(run, query)) found.push(run);
      if (found.length === wanted) return found;
    }
    const oldest = records.at(-1)?.value.tick;
    const exhausted = records.length < batch || (query.from !== undefined && oldest !== undefined && oldest < query.from);
    if (exhausted) return found;
  }
}
