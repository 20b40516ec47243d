/**
 * The status snapshot: who is alive, who owns which task, what ran last and what runs next — read from
 * the store alone, so any process (a node, `baton status`, a monitor) sees the same picture.
 */
import type { SessionRecord, Store } from '../stores/contract.js';
import { DECLARATION_PREFIX, PAUSE_PREFIX, runPrefix, TASK_OWNER_PREFIX, taskOfDeclarationKey, taskOfPauseKey, unitOfOwnerKey } from '../scheduler/keys.js';
import { scheduleFromDescription } from '../scheduler/schedule.js';
import { declaredUnitNames } from '../scheduler/modes.js';
import { asTaskName, taskOfUnit, type TaskName, type UnitName } from '../scheduler/names.js';
import type { DeclarationRecord, RunRecord } from '../scheduler/task.js';
import { resolveTaskSets } from '../scheduler/task-sets.js';
import { LOCK_PREFIX } from '../cluster/lock.js';

export interface NodeStatus {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly version: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly startedAt: number;
  readonly sessionId: string;
  /** Store-measured ms since the node's session opened. */
  readonly sessionAgeMs: number;
  /** Store-measured ms before the session expires without a renewal. */
  readonly expiresInMs: number;
  /** Store time of the session's last renewal (its TTL minus what is left), ms since the epoch. */
  readonly lastRenewalAt: number;
  /** Tasks this node owns now. */
  readonly owns: readonly string[];
}

export interface TaskStatus {
  /** The unit (scheduler/names.ts): the task's name, `task#i` for a shard, `task@node` for a broadcast share. */
  readonly unit: UnitName;
  /** The task the unit belongs to. */
  readonly task: TaskName;
  /** Placement mode as declared (`unknown` for an owner key no live node declares). */
  readonly mode: string;
  /** The schedule as declared; several when nodes disagree (a rolling deploy changing it). */
  readonly schedules: readonly string[];
  /**
   * Live nodes declare the task with different options: only the version of the longest-lived
   * declaring node runs (see `task:conflict` events for the fields that differ).
   */
  readonly conflict: boolean;
  readonly owner: { readonly node: string; readonly host: string; readonly pid: number; readonly token: string; readonly since: number } | null;
  readonly lastRun: RunRecord | null;
  /** Next tick after now, ms since the epoch. */
  readonly nextTick: number | null;
  /** How many live nodes declare the unit's task (for a broadcast share: its node, 1). */
  readonly declaredBy: number;
  /** Paused cluster-wide (`cluster.pause()`): its owner runs no tick until resumed. */
  readonly paused: boolean;
}

/** A cluster-wide lock held now (`cluster.lock()`). */
export interface LockStatus {
  readonly namespace: string;
  readonly name: string;
  readonly token: string;
  /** The holder's node, or null when its session is already gone (the lock frees with it). */
  readonly node: { readonly id: string; readonly host: string; readonly pid: number } | null;
  readonly since: number;
}

export interface StatusSnapshot {
  readonly cluster: string;
  readonly store: string;
  /** Store time of the snapshot, ms since the epoch. */
  readonly at: number;
  readonly nodes: readonly NodeStatus[];
  readonly tasks: readonly TaskStatus[];
  readonly locks: readonly LockStatus[];
  /** Live monitor sessions (`baton serve`, `cluster.monitor()`): they watch, they run no task. */
  readonly monitors: readonly NodeStatus[];
}

export interface ReadStatusOptions {
  /**
   * Newest run records to read per unit (default 1: the last run). The records go to `recentRuns` in
   * the same read, for a monitor that wants more than the last run without a second query per unit.
   */
  readonly runsPerUnit?: number;
}

/** A snapshot and, by unit, its newest run records (newest first; as many as `runsPerUnit`). */
export interface StatusWithRuns {
  readonly status: StatusSnapshot;
  readonly recentRuns: ReadonlyMap<UnitName, readonly RunRecord[]>;
}

export async function readStatus(store: Store): Promise<StatusSnapshot> {
  return (await readStatusWithRuns(store)).status;
}

export async function readStatusWithRuns(store: Store, options: ReadStatusOptions = {}): Promise<StatusWithRuns> {
  const runsPerUnit = options.runsPerUnit ?? 1;
  const [at, allSessions, holders, declarations, pauses, lockHolders] = await Promise.all([
    store.time(),
    store.listSessions(),
    store.listHolders(TASK_OWNER_PREFIX),
    store.list<DeclarationRecord>(DECLARATION_PREFIX),
    store.list(PAUSE_PREFIX),
    store.listHolders(LOCK_PREFIX),
  ]);
  const sessions = await resolveTaskSets(store, allSessions.filter((s) => s.info.role !== 'monitor'));
  const paused = new Set(pauses.map((p) => taskOfPauseKey(p.key)));
  const sessionById = new Map(sessions.map((s) => [s.id, s]));
  const holderByUnit = new Map(holders.map((h) => [unitOfOwnerKey(h.key), h]));
  // One row per unit (modes.ts): a task, each shard of a sharded task, each node's share of a broadcast task.
  interface Row { task: TaskName; mode: string; schedules: Set<string>; fingerprints: Set<string>; count: number }
  const rows = new Map<UnitName, Row>();
  const row = (unit: UnitName, task: TaskName, mode: string): Row => {
    let entry = rows.get(unit);
    if (!entry) rows.set(unit, (entry = { task, mode, schedules: new Set(), fingerprints: new Set(), count: 0 }));
    return entry;
  };
  for (const s of sessions) {
    for (const [name, declaration] of Object.entries(s.info.tasks)) {
      const task = asTaskName(name);
      const mode = declaration.mode ?? 'singleton';
      for (const unit of declaredUnitNames(task, mode, declaration.shards, s.info.id)) {
        const entry = row(unit, task, mode);
        entry.schedules.add(declaration.schedule);
        if (declaration.fingerprint) entry.fingerprints.add(declaration.fingerprint);
        entry.count += 1;
      }
    }
  }
  // Tasks no live node declares still show, with their last known schedule and history.
  const liveTasks = new Set([...rows.values()].map((r) => r.task));
  for (const d of declarations) {
    const task = taskOfDeclarationKey(d.key);
    // A broadcast task's units are its live nodes' shares: none without a live node.
    if (liveTasks.has(task) || d.value.mode === 'broadcast') continue;
    for (const unit of declaredUnitNames(task, d.value.mode, d.value.shards, '')) {
      row(unit, task, d.value.mode ?? 'singleton').schedules.add(d.value.schedule);
    }
  }
  for (const unit of holderByUnit.keys()) if (!rows.has(unit)) row(unit, taskOfUnit(unit), 'unknown');
  const names = [...rows.keys()].sort();
  const lastRuns = await Promise.all(names.map((unit) => store.list<RunRecord>(runPrefix(unit), { reverse: true, limit: runsPerUnit })));
  const tasks: TaskStatus[] = names.map((unit, i) => {
    const entry = rows.get(unit) as Row;
    const holder = holderByUnit.get(unit);
    const ownerSession = holder ? sessionById.get(holder.sessionId) : undefined;
    const [firstSchedule] = entry.schedules;
    const schedule = firstSchedule ? scheduleFromDescription(firstSchedule) : undefined;
    return {
      unit,
      task: entry.task,
      mode: entry.mode,
      schedules: [...entry.schedules],
      conflict: entry.fingerprints.size > 1,
      owner:
        holder && ownerSession
          ? { node: ownerSession.info.id, host: ownerSession.info.host, pid: ownerSession.info.pid, token: holder.token.toString(), since: holder.acquiredAt }
          : null,
      lastRun: lastRuns[i]?.[0]?.value ?? null,
      nextTick: schedule?.next(at) ?? null,
      declaredBy: entry.count,
      paused: paused.has(entry.task),
    };
  });
  const nodeStatus = (s: SessionRecord): NodeStatus => ({
    id: s.info.id,
    host: s.info.host,
    pid: s.info.pid,
    version: s.info.version,
    labels: s.info.labels,
    startedAt: s.info.startedAt,
    sessionId: s.id,
    sessionAgeMs: s.ageMs,
    expiresInMs: s.expiresInMs,
    lastRenewalAt: at - (s.ttlMs - s.expiresInMs),
    owns: holders.filter((h) => h.sessionId === s.id).map((h) => unitOfOwnerKey(h.key)),
  });
  const locks: LockStatus[] = lockHolders.map((h) => {
    const [namespace = '', ...name] = h.key.slice(LOCK_PREFIX.length).split('/');
    const info = sessionById.get(h.sessionId)?.info;
    return { namespace, name: name.join('/'), token: h.token.toString(), node: info ? { id: info.id, host: info.host, pid: info.pid } : null, since: h.acquiredAt };
  });
  const status: StatusSnapshot = {
    cluster: store.cluster,
    store: store.kind,
    at,
    nodes: sessions.map(nodeStatus),
    tasks,
    locks,
    monitors: allSessions.filter((s) => s.info.role === 'monitor').map(nodeStatus),
  };
  return { status, recentRuns: new Map(names.map((unit, i) => [unit, (lastRuns[i] ?? []).map((r) => r.value)])) };
}

