/**
 * The history a chaos node writes, one JSON object per line (JSONL). Times are `CLOCK_MONOTONIC`
 * milliseconds (`process.hrtime`), which every process of the host shares, so the invoke/complete times
 * of different nodes can be compared. Tokens are decimal strings (bigints do not survive JSON).
 *
 * Store operations are recorded Jepsen-style by a wrapper around the node's Store: `invokeM` is taken
 * before the request is sent, `completeM` after the answer arrived; an operation whose answer never came
 * (the node was killed, the connection dropped) has `result: 'error'` or no line at all — its effect is
 * unknown and the checker treats it as possibly applied.
 */
export type HistoryEvent =
  | { e: 'start'; node: string; pid: number; m: number; skewMs: number; unfenced: boolean; seed: number }
  | { e: 'ready'; node: string; m: number }
  | { e: 'stop'; node: string; m: number }
  | AcquireOp
  | ReleaseOp
  | PutOp
  | DeleteOp
  | { e: 'session'; node: string; what: 'opened' | 'lost' | 'stalled'; session?: string; reason?: string; lagMs?: number; m: number }
  | { e: 'owner'; node: string; what: 'acquired' | 'lost' | 'released'; task: string; token: string; reason?: string; m: number }
  | { e: 'run'; node: string; what: 'start' | 'end'; task: string; tick: number; token: string; outcome?: string; m: number }
  | { e: 'missed'; node: string; task: string; from: number; to: number; count: number; m: number }
  | { e: 'skew'; node: string; offsetMs: number; m: number }
  | { e: 'signal'; node: string; task: string; reason: string; m: number }
  /** Written before a put is sent: a put with an invoke line and no completion line had an unknown effect. */
  | { e: 'put-invoke'; node: string; key: string; op: number; m: number };

export interface AcquireOp {
  e: 'acquire';
  node: string;
  key: string;
  session: string;
  invokeM: number;
  completeM: number;
  result: 'ok' | 'held' | 'error';
  token?: string;
  error?: string;
}

export interface ReleaseOp {
  e: 'release';
  node: string;
  key: string;
  token: string;
  invokeM: number;
  completeM: number;
  result: 'ok' | 'not-held' | 'error';
}

export interface PutOp {
  e: 'put';
  node: string;
  key: string;
  /** The ownership the writer acted under: the guard, or (negative control) the token it believed it held. */
  fenceKey?: string;
  fenceToken?: string;
  /** Whether the store was asked to check the guard. */
  guarded: boolean;
  ifVersion?: number | 'absent';
  invokeM: number;
  completeM: number;
  result: 'ok' | 'version' | 'fenced' | 'error';
  /** Matches the `put-invoke` line of the same node. */
  op?: number;
  version?: number;
  error?: string;
}

/**
 * A conditional delete (`ifVersion`): an owner withdrawing a tick it claimed ahead and will not run
 * (src/scheduler/claim-ahead.ts). `deleted`: the store removed that version of the record.
 */
export interface DeleteOp {
  e: 'delete';
  node: string;
  key: string;
  ifVersion: number;
  guarded: boolean;
  invokeM: number;
  completeM: number;
  result: 'deleted' | 'refused' | 'error';
}

/** A record of the store's final state (read after every node stopped). */
export interface FinalRecord {
  readonly key: string;
  readonly value: unknown;
  readonly version: number;
}

export const LEDGER_PREFIX = 'chaos/ledger/';
export const LOCK_DATA_PREFIX = 'chaos/lockdata/';
export const LOCK_KEY_PREFIX = 'chaos-lock/';

export const monoNow = (): number => Number(process.hrtime.bigint()) / 1e6;
