/**
 * The etcd key layout of one cluster. Everything lives under `<prefix>/<cluster>/`:
 *
 *   <root>sessions/<session id>   JSON { info, ttlMs, openedAt }   attached to the session's lease
 *   <root>owners/<key>            JSON { sessionId, acquiredAt }   attached to the holder's lease
 *   <root>records/<key>           JSON { value, updatedAt }        no lease
 *
 * The cluster name is percent-encoded so that no cluster's root is a prefix of another's ("a" vs "a/b").
 * Keys are compared as bytes (UTF-8), like etcd does.
 */
import type { Change } from '../contract.js';

export class KeyLayout {
  /** `<prefix>/<cluster>/`: the watched range of this cluster. */
  readonly root: Buffer;
  readonly sessions: Buffer;
  readonly owners: Buffer;
  readonly records: Buffer;

  constructor(prefix: string, cluster: string) {
    const root = `${prefix}/${encodeURIComponent(cluster)}/`;
    this.root = Buffer.from(root);
    this.sessions = Buffer.from(`${root}sessions/`);
    this.owners = Buffer.from(`${root}owners/`);
    this.records = Buffer.from(`${root}records/`);
  }

  session(sessionId: string): Buffer {
    return Buffer.concat([this.sessions, Buffer.from(sessionId)]);
  }

  owner(key: string): Buffer {
    return Buffer.concat([this.owners, Buffer.from(key)]);
  }

  record(key: string): Buffer {
    return Buffer.concat([this.records, Buffer.from(key)]);
  }

  /** The caller's key of a full owner or record key. */
  ownerKey(full: Buffer): string {
    return full.subarray(this.owners.length).toString();
  }

  recordKey(full: Buffer): string {
    return full.subarray(this.records.length).toString();
  }

  /**
   * What a change of `full` (a key under the root) means to watchers; `deleted`: the event deleted it.
   * An owner key deleted is free (`holder: null`). A session key is deleted only with its lease (closed,
   * expired or revoked), which deletes the session's owner keys in the same revision: that is announced
   * as the session's end (`endedSession`) first, so that a standby next in line claims before it re-reads
   * the sessions.
   */
  changesOf(full: Buffer, deleted: boolean): Change[] {
    if (startsWith(full, this.owners)) return [{ scope: 'owners', key: this.ownerKey(full), ...(deleted ? { holder: null } : {}) }];
    if (startsWith(full, this.records)) return [{ scope: 'records', key: this.recordKey(full) }];
    if (startsWith(full, this.sessions)) {
      return deleted ? [{ scope: 'owners', endedSession: full.subarray(this.sessions.length).toString() }, { scope: 'sessions' }] : [{ scope: 'sessions' }];
    }
    return [{ scope: 'any' }];
  }
}

/** The smallest key greater than every key starting with `prefix`: turns a prefix into an etcd range. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  // All 0xff (never for our keys, which start with '/'): etcd's "to the end of the keyspace".
  return Buffer.from([0]);
}

function startsWith(full: Buffer, prefix: Buffer): boolean {
  return full.length >= prefix.length && full.subarray(0, prefix.length).equals(prefix);
}
