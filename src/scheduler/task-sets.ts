/**
 * Declared task sets, stored once per distinct set. A session used to publish its node's whole task list,
 * and every node re-read every session: with 100 nodes declaring the same 10,000 tasks that is 100 copies
 * of one list, read by each node. Now a node writes its list once under `taskset/<fingerprint>` (most
 * nodes declare the same set, so most find it written) and its session publishes only the fingerprint
 * (`NodeInfo.taskSet`, with `tasks` empty). Readers resolve sessions through a process-wide cache: a set
 * is immutable (its key is the hash of its content), so it is read once per process, whatever the
 * number of nodes, sessions or re-reads.
 *
 * Sets are not deleted: one record per distinct task list ever declared in the cluster (a deploy that
 * changes the list adds one).
 */
import { createHash } from 'node:crypto';
import type { NodeInfo, TaskDeclaration } from '../core/node-info.js';
import type { SessionRecord, Store } from '../stores/contract.js';
import { taskSetKey } from './keys.js';

type TaskList = NodeInfo['tasks'];

/** Fingerprints by list object: a node publishes the same list object until its tasks change. */
const fingerprints = new WeakMap<TaskList, string>();

/** 24 hex digits of SHA-256 over the list in name order: equal lists, equal fingerprints. */
export function taskSetFingerprint(tasks: TaskList): string {
  const known = fingerprints.get(tasks);
  if (known !== undefined) return known;
  const fingerprint = hashList(tasks);
  fingerprints.set(tasks, fingerprint);
  return fingerprint;
}

function hashList(tasks: TaskList): string {
  const canonical = Object.keys(tasks)
    .sort()
    .map((name) => {
      const d = tasks[name] as TaskDeclaration;
      return [name, d.schedule, d.mode, d.fingerprint ?? null, d.shards ?? null];
    });
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex').slice(0, 24);
}

/**
 * The info a session publishes: the fingerprint of the task list instead of the list, once the list is
 * stored. The node that stores a list first is also to write its per-task declarations (`decl/`, which let
 * status and triggers know tasks no live node declares): `declarations` is then set, for the caller to
 * run once its session is open — 10,000 declarations take seconds to write, and nothing waits for them
 * (controls fall back to the live task lists meanwhile). A node finding the list stored, in this process
 * or in the store, writes nothing. Limit: a node that stops before writing them leaves them missing until
 * a node declares these tasks in another list. A node without tasks (a monitor) publishes its empty list.
 */
export async function publishTaskSet(store: Store, info: NodeInfo): Promise<{ info: NodeInfo; declarations: boolean }> {
  if (Object.keys(info.tasks).length === 0) return { info, declarations: false };
  const fingerprint = taskSetFingerprint(info.tasks);
  let stored = storedIn.get(store);
  if (!stored) storedIn.set(store, (stored = new Set()));
  const created = !stored.has(fingerprint) && (await store.put(taskSetKey(fingerprint), info.tasks, { ifVersion: 'absent' })).ok;
  stored.add(fingerprint);
  remember(fingerprint, info.tasks);
  return { info: { ...info, tasks: {}, taskSet: fingerprint }, declarations: created };
}

/** The sets known to be stored, per store handle (nodes sharing a handle check once). */
const storedIn = new WeakMap<Store, Set<string>>();

/** Sets by fingerprint, most recently used last; a process rarely sees more than a few. */
const cache = new Map<string, TaskList>();
const CACHE_SIZE = 64;

function remember(fingerprint: string, tasks: TaskList): void {
  cache.delete(fingerprint);
  cache.set(fingerprint, tasks);
  if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value as string);
}

/**
 * The sessions with their task lists filled in from their sets. A set that cannot be found (deleted by
 * hand) resolves to no tasks: that node then competes for nothing, as if it declared none.
 */
export async function resolveTaskSets(store: Store, sessions: readonly SessionRecord[]): Promise<SessionRecord[]> {
  const missing = new Set<string>();
  for (const s of sessions) if (s.info.taskSet !== undefined && !cache.has(s.info.taskSet)) missing.add(s.info.taskSet);
  await Promise.all(
    [...missing].map(async (fingerprint) => {
      const record = await store.get<TaskList>(taskSetKey(fingerprint));
      if (record) remember(fingerprint, record.value);
    }),
  );
  return sessions.map((s) => {
    const fingerprint = s.info.taskSet;
    if (fingerprint === undefined) return s;
    return { ...s, info: { ...s.info, tasks: cache.get(fingerprint) ?? {} } };
  });
}
