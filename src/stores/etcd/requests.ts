/**
 * One function per etcd request the store sends. Every write is a single Txn evaluated atomically by the
 * etcd leader: the compares and the write happen at one revision, so no other client can slip between
 * them (the etcd equivalent of one SQL statement). Failure branches read back what the caller needs to
 * explain a refusal, in the same round trip and at the same revision.
 *
 * Int64 fields (revisions, lease ids) travel as decimal strings: JavaScript numbers lose precision above
 * 2^53 and etcd lease ids use all 63 bits.
 */
import type { ICompare, IDeleteRangeRequest, IPutRequest, IRangeRequest, IRequestOp, ITxnRequest } from 'etcd3';
import type { Guard, ListOptions, WriteCondition } from '../contract.js';
import { prefixEnd, type KeyLayout } from './keys.js';

/** Puts the session record, attached to its lease: it vanishes when the lease expires or is revoked. */
export function putSession(keys: KeyLayout, sessionId: string, lease: string, value: string): IPutRequest {
  return { key: keys.session(sessionId), value: Buffer.from(value), lease };
}

/** Live sessions' records; their liveness is then confirmed per lease (see `EtcdStore.#leaseTtl`). */
export function rangeSessions(keys: KeyLayout): IRangeRequest {
  return { key: keys.sessions, range_end: prefixEnd(keys.sessions), sort_order: 'Ascend', sort_target: 'Key' };
}

/**
 * Takes `key` for the session's lease.
 * - `session exists`: the session record is attached to the lease, so it exists exactly while etcd has
 *   not revoked the lease; a closed or expired session cannot acquire (SessionExpiredError).
 * - `create_revision == 0`: the owner key does not exist, so of any number of concurrent acquirers only
 *   the first Txn to commit sees it absent. The put's revision (the Txn's revision) is the fencing token.
 * - The put carries the session's lease: ownership vanishes, in etcd, together with the session.
 * Failure reads the owner and the session record so the caller tells "held by" from "session gone".
 */
export function acquireOwner(keys: KeyLayout, key: string, sessionId: string, lease: string, value: string): ITxnRequest {
  return {
    compare: [exists(keys.session(sessionId)), absent(keys.owner(key))],
    success: [{ request_put: { key: keys.owner(key), value: Buffer.from(value), lease } }],
    failure: [{ request_range: { key: keys.owner(key) } }, { request_range: { key: keys.session(sessionId) } }],
  };
}

/**
 * {@link acquireOwner} for several keys at once: all of them when all are free (one revision, so one
 * token for all: tokens are per key, and each is still greater than every earlier one of its key).
 * Failure reads every owner and the session record: the caller keeps the free keys for another Txn.
 */
export function acquireOwners(keys: KeyLayout, ownerKeys: readonly string[], sessionId: string, lease: string, value: string): ITxnRequest {
  return {
    compare: [exists(keys.session(sessionId)), ...ownerKeys.map((key) => absent(keys.owner(key)))],
    success: ownerKeys.map((key) => ({ request_put: { key: keys.owner(key), value: Buffer.from(value), lease } })),
    failure: [{ request_range: { key: keys.session(sessionId) } }, ...ownerKeys.map((key) => ({ request_range: { key: keys.owner(key) } }))],
  };
}

/**
 * Deletes the owner key only if it still carries `token` as its mod revision: a stale owner cannot
 * release a key someone else acquired since (that acquisition has a greater revision).
 */
export function releaseOwner(keys: KeyLayout, key: string, token: bigint): ITxnRequest {
  return {
    compare: [heldWith(keys, { key, token })],
    success: [{ request_delete_range: { key: keys.owner(key) } }],
    failure: [],
  };
}

/**
 * {@link releaseOwner} for several keys, all or nothing (a Txn's compares are): the caller releases the
 * keys one by one when any of them moved on.
 */
export function releaseOwners(keys: KeyLayout, guards: readonly Guard[]): ITxnRequest {
  return {
    compare: guards.map((guard) => heldWith(keys, guard)),
    success: guards.map((guard) => ({ request_delete_range: { key: keys.owner(guard.key) } })),
    failure: [],
  };
}

/**
 * The first key at or after `from` under `all` (`<prefix>/`), its name only: one step of listing the
 * clusters, which jumps from one cluster's range to the next instead of reading every key.
 */
export function firstKeyFrom(all: Buffer, from: Buffer): IRangeRequest {
  return { key: from, range_end: prefixEnd(all), limit: 1, keys_only: true };
}

export function getOwner(keys: KeyLayout, key: string): IRangeRequest {
  return { key: keys.owner(key) };
}

export function rangeOwners(keys: KeyLayout, prefix: string): IRangeRequest {
  const start = keys.owner(prefix);
  return { key: start, range_end: prefixEnd(start), sort_order: 'Ascend', sort_target: 'Key' };
}

export function getRecord(keys: KeyLayout, key: string): IRangeRequest {
  return { key: keys.record(key) };
}

/**
 * Writes a record when `condition` holds. `prev_kv` returns the previous version, so the new version
 * (etcd's per-key `version`: 1 on creation, +1 per put, reset by a delete) is known without a read.
 */
export function putRecord(keys: KeyLayout, key: string, value: string, condition: WriteCondition): ITxnRequest {
  return conditionalWrite(keys, key, condition, { request_put: { key: keys.record(key), value: Buffer.from(value), prev_kv: true } });
}

/** Deletes a record when `condition` holds; `deleted` in the response says whether it existed. */
export function deleteRecord(keys: KeyLayout, key: string, condition: WriteCondition): ITxnRequest {
  return conditionalWrite(keys, key, condition, { request_delete_range: { key: keys.record(key) } });
}

export function rangeRecords(keys: KeyLayout, prefix: string, options: ListOptions): IRangeRequest {
  const start = keys.record(prefix);
  return {
    key: start,
    range_end: prefixEnd(start),
    sort_order: options.reverse ? 'Descend' : 'Ascend',
    sort_target: 'Key',
    // etcd sorts the whole range before applying the limit, so "newest first, limit n" is exact.
    limit: options.limit ?? 0,
  };
}

/**
 * Deletes records in `[prefix, beforeKey)` that start with `prefix`, in one range delete; undefined when
 * the range is empty (beforeKey sorts before the prefix).
 */
export function deleteRecordsBefore(keys: KeyLayout, prefix: string, beforeKey: string): IDeleteRangeRequest | undefined {
  const start = keys.record(prefix);
  const before = keys.record(beforeKey);
  const end = prefixEnd(start);
  const rangeEnd = Buffer.compare(before, end) < 0 ? before : end;
  return Buffer.compare(start, rangeEnd) < 0 ? { key: start, range_end: rangeEnd } : undefined;
}

/**
 * The compares of a conditional write:
 * - guard: the guard's owner key has `mod_revision == token`. The owner key is attached to its holder's
 *   lease, so it exists only while that session is alive; a released, expired or superseded owner's
 *   key is gone or carries a greater revision, and the write is refused.
 * - `ifVersion: 'absent'`: `version == 0` (the key does not exist): a unique insert, one winner.
 * - `ifVersion: n`: `version == n`: compare-and-set.
 * Failure reads the guard's owner key, so the caller tells 'fenced' from 'version'.
 */
function conditionalWrite(keys: KeyLayout, key: string, condition: WriteCondition, write: IRequestOp): ITxnRequest {
  const compare: ICompare[] = [];
  const failure: IRequestOp[] = [];
  if (condition.guard) {
    compare.push(heldWith(keys, condition.guard));
    failure.push({ request_range: { key: keys.owner(condition.guard.key) } });
  }
  if (condition.ifVersion !== undefined) {
    const version = condition.ifVersion === 'absent' ? 0 : condition.ifVersion;
    compare.push({ key: keys.record(key), target: 'Version', result: 'Equal', version });
  }
  return { compare, success: [write], failure };
}

/** The owner key of `guard.key` was last written at revision `guard.token` (tokens are > 0, so it exists). */
function heldWith(keys: KeyLayout, guard: Guard): ICompare {
  return { key: keys.owner(guard.key), target: 'Mod', result: 'Equal', mod_revision: guard.token.toString() };
}

function exists(key: Buffer): ICompare {
  return { key, target: 'Version', result: 'Greater', version: 0 };
}

function absent(key: Buffer): ICompare {
  return { key, target: 'Create', result: 'Equal', create_revision: 0 };
}
