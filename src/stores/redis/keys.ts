/**
 * Key names of one cluster. Every key carries the same hash tag `{prefix:cluster}`, so on Redis Cluster
 * they all live in one slot and a Lua script may touch any of them (scripts must stay within one slot).
 *
 * | key                       | type   | holds                                                          |
 * |---------------------------|--------|----------------------------------------------------------------|
 * | `{T}:sessions`            | zset   | session id → expires_at (server ms): the liveness index         |
 * | `{T}:s:<session id>`      | hash   | info, ttl, opened, client (CLIENT ID), process; PX backstop     |
 * | `{T}:h:<session id>`      | set    | keys the session holds, to drop them with it; PX backstop       |
 * | `{T}:owners`              | hash   | key → "<token> <session id> <acquired at ms>"                   |
 * | `{T}:owner-keys`          | zset   | owned keys, all score 0: lexicographic index for prefix listing |
 * | `{T}:r:<key>`             | hash   | value (JSON), version, at                                       |
 * | `{T}:record-keys`         | zset   | record keys, all score 0: lexicographic index                   |
 * | `{T}:meta`                | hash   | seq (token counter), resets, last_reset                         |
 * | `{T}:changes` (channel)   | pubsub | "<scope> <key>" published by the scripts                        |
 */

export interface ClusterKeys {
  /** `{prefix:cluster}:`, from which scripts derive per-session and per-record keys. */
  readonly base: string;
  readonly sessions: string;
  readonly owners: string;
  readonly ownerKeys: string;
  readonly meta: string;
  readonly recordKeys: string;
  readonly channel: string;
  /** The keys every script declares, in the order the scripts expect them (KEYS[1..5]). */
  readonly scriptKeys: readonly string[];
  record(key: string): string;
}

/**
 * A cluster name may hold any character; `{`, `}` and `%` are escaped so the hash tag cannot end early
 * and two cluster names can never produce the same key.
 */
function escapeTag(cluster: string): string {
  return cluster.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function clusterKeys(prefix: string, cluster: string): ClusterKeys {
  const base = `{${prefix}:${escapeTag(cluster)}}:`;
  const keys = {
    sessions: `${base}sessions`,
    owners: `${base}owners`,
    ownerKeys: `${base}owner-keys`,
    meta: `${base}meta`,
    recordKeys: `${base}record-keys`,
  };
  return {
    base,
    ...keys,
    channel: `${base}changes`,
    scriptKeys: [keys.sessions, keys.owners, keys.ownerKeys, keys.meta, keys.recordKeys],
    record: (key) => `${base}r:${key}`,
  };
}

/** The keys that exist exactly while a cluster holds something (Redis deletes an emptied zset). */
const INDEX_KEYS: ReadonlySet<string> = new Set(['sessions', 'owner-keys', 'record-keys']);

/** The `SCAN MATCH` pattern of every key of every cluster under `prefix` (its characters are not glob syntax). */
export function allClustersPattern(prefix: string): string {
  return `{${prefix}:*}:*`;
}

/** The cluster whose sessions, owner-keys or record-keys index `key` is; null for any other key. */
export function clusterOfIndexKey(prefix: string, key: string): string | null {
  const head = `{${prefix}:`;
  if (!key.startsWith(head)) return null;
  const end = key.indexOf('}', head.length); // escapeTag leaves no '}' inside the tag
  if (end < 0 || key[end + 1] !== ':' || !INDEX_KEYS.has(key.slice(end + 2))) return null;
  return key.slice(head.length, end).replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}
