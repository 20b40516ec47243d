/**
 * The status snapshot: who is alive, who owns which task, what ran last and what runs next — read from
 * the store alone, so any process (a node, `baton status`, a monitor) sees the same picture.
 */
import type { Store } from '../stores/contract.js';
import { DECLARATION_PREFIX, PAUSE_PREFIX, runPrefix, TASK_OWNER_PREFIX, taskOfOwnerKey } from '../scheduler/keys.js';
import { scheduleFromDescription } from '../scheduler/schedule.js';
import type { DeclarationRecord, RunRecord } from '../scheduler/task.js';

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
  /** Tasks this node owns now. */
  readonly owns: readonly string[];
}

export interface TaskStatus {
  readonly name: string;
  /** The schedule as declared; several when nodes disagree (a rolling deploy changing it). */
  readonly schedules: readonly string[];
  readonly owner: { readonly node: string; readonly host: string; readonly pid: number; readonly token: string; readonly since: number } | null;
  readonly lastRun: RunRecord | null;
  /** Next tick after now, ms since the epoch. */
  readonly nextTick: number | null;
  /** How many live nodes declare the task. */
  readonly declaredBy: number;
  /** Paused cluster-wide (`cluster.pause()`): its owner runs no tick until resumed. */
  readonly paused: boolean;
}

export interface StatusSnapshot {
  readonly cluster: string;
  readonly store: string;
  /** Store time of the snapshot, ms since the epoch. */
  readonly at: number;
  readonly nodes: readonly NodeStatus[];
  readonly tasks: readonly TaskStatus[];
}

export async function readStatus(store: Store): Promise<StatusSnapshot> {
  const [at, sessions, holders, declarations, pauses] = await Promise.all([
    store.time(),
    store.listSessions(),
    store.listHolders(TASK_OWNER_PREFIX),
    store.list<DeclarationRecord>(DECLARATION_PREFIX),
    store.list(PAUSE_PREFIX),
  ]);
  const paused = new Set(pauses.map((p) => p.key.slice(PAUSE_PREFIX.length)));
  const sessionById = new Map(sessions.map((s) => [s.id, s]));
  const holderByTask = new Map(holders.map((h) => [taskOfOwnerKey(h.key), h]));
  const declared = new Map<string, { schedules: Set<string>; count: number }>();
  for (const s of sessions) {
    for (const [task, declaration] of Object.entries(s.info.tasks)) {
      const entry = declared.get(task) ?? { schedules: new Set<string>(), count: 0 };
      entry.schedules.add(declaration.schedule);
      entry.count += 1;
      declared.set(task, entry);
    }
  }
  // Tasks no live node declares still show, with their last known schedule and history.
  for (const d of declarations) {
    const task = d.key.slice(DECLARATION_PREFIX.length);
    if (!declared.has(task)) declared.set(task, { schedules: new Set([d.value.schedule]), count: 0 });
  }
  for (const task of holderByTask.keys()) if (!declared.has(task)) declared.set(task, { schedules: new Set(), count: 0 });
  const names = [...declared.keys()].sort();
  const lastRuns = await Promise.all(names.map((task) => store.list<RunRecord>(runPrefix(task), { reverse: true, limit: 1 })));
  const tasks: TaskStatus[] = names.map((name, i) => {
    const entry = declared.get(name) as { schedules: Set<string>; count: number };
    const holder = holderByTask.get(name);
    const ownerSession = holder ? sessionById.get(holder.sessionId) : undefined;
    const [firstSchedule] = entry.schedules;
    const schedule = firstSchedule ? scheduleFromDescription(firstSchedule) : undefined;
    return {
      name,
      schedules: [...entry.schedules],
      owner:
        holder && ownerSession
          ? { node: ownerSession.info.id, host: ownerSession.info.host, pid: ownerSession.info.pid, token: holder.token.toString(), since: holder.acquiredAt }
          : null,
      lastRun: lastRuns[i]?.[0]?.value ?? null,
      nextTick: schedule?.next(at) ?? null,
      declaredBy: entry.count,
      paused: paused.has(name),
    };
  });
  const nodes: NodeStatus[] = sessions.map((s) => ({
    id: s.info.id,
    host: s.info.host,
    pid: s.info.pid,
    version: s.info.version,
    labels: s.info.labels,
    startedAt: s.info.startedAt,
    sessionId: s.id,
    sessionAgeMs: s.ageMs,
    expiresInMs: s.expiresInMs,
    owns: holders.filter((h) => h.sessionId === s.id).map((h) => taskOfOwnerKey(h.key)),
  }));
  return { cluster: store.cluster, store: store.kind, at, nodes, tasks };
}

