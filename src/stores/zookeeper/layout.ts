/**
 * Where the ZooKeeper store keeps things, how values are encoded, and the session liveness rule.
 *
 * ```
 * <chroot>/<cluster>/clock             written to read the server's wall time (its mtime)
 * <chroot>/<cluster>/sessions/<id>     one per session: {info, ttlMs, renewedFrom}; ephemeral when its
 *                                      TTL fits in the connection's ZooKeeper session timeout
 * <chroot>/<cluster>/owners/<key>      one per key ever held, never deleted: {sessionId} or {} when free;
 *                                      its data is bumped on every ownership change (watched)
 * <chroot>/<cluster>/records/<key>     one per record: the JSON value; znode version = record version;
 *                                      its parent's data is bumped on every record change (watched)
 * ```
 * Cluster names and keys are percent-encoded into single znode names (keys may contain '/').
 */
import type { NodeInfo } from '../../core/node-info.js';
import type { NodeStat } from './connection.js';

export interface ClusterPaths {
  /** The chroot: one child per cluster ever opened. */
  readonly root: string;
  readonly base: string;
  readonly clock: string;
  readonly sessions: string;
  readonly owners: string;
  readonly records: string;
  session(id: string): string;
  owner(key: string): string;
  record(key: string): string;
}

export function clusterPaths(chroot: string, cluster: string): ClusterPaths {
  const base = `${chroot === '/' ? '' : chroot}/${encodeName(cluster)}`;
  return {
    root: chroot,
    base,
    clock: `${base}/clock`,
    sessions: `${base}/sessions`,
    owners: `${base}/owners`,
    records: `${base}/records`,
    session: (id) => `${base}/sessions/${encodeName(id)}`,
    owner: (key) => `${base}/owners/${encodeName(key)}`,
    record: (key) => `${base}/records/${encodeName(key)}`,
  };
}

/** Every node the store needs, parents first (created idempotently on open). */
export function layoutNodes(chroot: string, paths: ClusterPaths): string[] {
  const parts = chroot.split('/').filter(Boolean);
  const chrootNodes = parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`);
  return [...chrootNodes, paths.base, paths.clock, paths.sessions, paths.owners, paths.records];
}

/**
 * A key as one znode name: percent-encoded, so '/' cannot split it. The names ZooKeeper forbids are
 * escaped too: '.' and '..' (their dots encoded) and '' (written '%', which no encoding produces).
 */
export function encodeName(key: string): string {
  if (key === '') return '%';
  const encoded = encodeURIComponent(key);
  return encoded === '.' || encoded === '..' ? encoded.replaceAll('.', '%2E') : encoded;
}

export function decodeName(name: string): string {
  return name === '%' ? '' : decodeURIComponent(name);
}

export interface SessionData {
  readonly info: NodeInfo;
  readonly ttlMs: number;
  /**
   * The mtime of the version this renewal replaced; null for the version written by openSession.
   * It makes a late renewal self-evidently void (see {@link isSessionLive}).
   */
  readonly renewedFrom: number | null;
}

export interface OwnerData {
  /** The holding session; absent when the key is free (released or freed by closeSession). */
  readonly sessionId?: string;
}

export const EMPTY = Buffer.alloc(0);
export const FREE_OWNER = encodeJson({} satisfies OwnerData);

export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value) ?? 'null');
}

export function decodeJson<T>(data: Buffer): T {
  return JSON.parse(data.toString('utf8')) as T;
}

/**
 * The liveness rule, evaluated against `now`, the server's wall time read in the same call:
 * 1. the last renewal (or the open) is less than `ttlMs` old: `mtime + ttlMs > now`;
 * 2. that renewal was itself in time: `mtime - renewedFrom < ttlMs`. ZooKeeper cannot refuse a write
 *    by time, so a renewal sent after expiry does get written; this clause makes it void for every
 *    reader, forever. Renewals refuse to extend a void version, so by induction a session that has
 *    expired once can never look live again.
 */
export function isSessionLive(session: SessionData, stat: NodeStat, now: number): boolean {
  return isRenewalInTime(session, stat) && stat.mtime + session.ttlMs > now;
}

/** Clause 2 alone: false when this version was written by a renewal that came after expiry. */
export function isRenewalInTime(session: SessionData, stat: NodeStat): boolean {
  return session.renewedFrom === null || stat.mtime - session.renewedFrom < session.ttlMs;
}
