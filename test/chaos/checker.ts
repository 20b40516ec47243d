/**
 * The history checker: a pure function over the merged node histories and the store's final state that
 * verifies DESIGN.md invariants 1–5 as far as a history can show them. Every rule is decidable from
 * store-confirmed facts (tokens the store returned, writes it accepted, versions it assigned) and from
 * invoke/complete times on the host's shared monotonic clock — never from a node's belief. Anything the
 * checker cannot decide (a malformed line, a missing final record, nothing ran) is reported as
 * `undecidable`, and an undecidable history counts as a failure.
 *
 * Rules:
 * - `overlap` (inv. 1 + 2): a write accepted under token t of key K was *invoked after* an acquisition of K
 *   with a greater token had completed — two owners acted at once.
 * - `token-order` (inv. 1): an acquisition of K invoked after another one completed got a token that is not
 *   greater (a repeat by the same session with the same token is a re-acquisition and allowed).
 * - `stale-write` (inv. 2): in the store's own order (record versions) of the accepted fenced writes to a
 *   key, a token went backwards; or two accepted writes got the same version.
 * - `double-run` / `double-claim` (inv. 3): a tick started twice, or two unique inserts of one claim won.
 * - `unrecorded-run` (inv. 3): a run started without its claim in the store under its token.
 * - `lost-tick` (inv. 3): between a task's first and last recorded tick, a tick with neither a run record
 *   nor a "missed" record.
 * - `lost-update` (inv. 2): a key's final version, or a checkpoint's counter, does not match the writes
 *   the store accepted (allowing for writes whose answer never came).
 * Invariants 4 and 5 (self-fencing, clean hand-over) show through the same rules: a zombie that kept
 * acting shows up as `overlap`/`stale-write` if the store let it through, and a hand-over that lost or
 * repeated a tick as `lost-tick`/`double-run`.
 */
import type { AcquireOp, DeleteOp, FinalRecord, HistoryEvent, PutOp } from './history.js';

export type ViolationKind =
  | 'overlap'
  | 'token-order'
  | 'stale-write'
  | 'double-run'
  | 'double-claim'
  | 'unrecorded-run'
  | 'lost-tick'
  | 'lost-update';

export interface Violation {
  readonly kind: ViolationKind;
  readonly key: string;
  readonly detail: string;
}

export interface CheckInput {
  readonly events: readonly HistoryEvent[];
  /** Lines that could not be parsed, with their source: any makes the history undecidable. */
  readonly malformed?: readonly string[];
  /** The store's final records under `run/`, `checkpoint/` and `chaos/`. */
  readonly final: readonly FinalRecord[];
  /** Interval tasks of the workload. */
  readonly tasks: readonly { readonly name: string; readonly intervalMs: number }[];
}

export interface CheckStats {
  runs: number;
  acquisitions: number;
  acceptedWrites: number;
  fencedRefusals: number;
  missedTicks: number;
}

export interface CheckResult {
  readonly ok: boolean;
  readonly violations: Violation[];
  readonly undecidable: string[];
  readonly stats: CheckStats;
}

const MAX_REPORTED_PER_KIND = 50;

export function checkHistory(input: CheckInput): CheckResult {
  const violations: Violation[] = [];
  const undecidable: string[] = [...(input.malformed ?? []).map((line) => `malformed history line: ${line.slice(0, 200)}`)];
  const counts = new Map<ViolationKind, number>();
  const report = (kind: ViolationKind, key: string, detail: string) => {
    const n = (counts.get(kind) ?? 0) + 1;
    counts.set(kind, n);
    if (n <= MAX_REPORTED_PER_KIND) violations.push({ kind, key, detail });
    else if (n === MAX_REPORTED_PER_KIND + 1) violations.push({ kind, key: '*', detail: `more ${kind} violations not listed` });
  };
  const stats: CheckStats = { runs: 0, acquisitions: 0, acceptedWrites: 0, fencedRefusals: 0, missedTicks: 0 };

  const acquisitions = new Map<string, AcquireOp[]>();
  const puts = new Map<string, PutOp[]>();
  const runStarts: Extract<HistoryEvent, { e: 'run' }>[] = [];
  /** Accepted conditional deletes (claims withdrawn), per key. */
  const deletes = new Map<string, DeleteOp[]>();
  /** Puts sent but never answered in the history (the node was killed meanwhile), per key. */
  const invoked = new Map<string, { key: string; done: boolean }>();
  for (const ev of input.events) {
    if (!isWellFormed(ev)) {
      undecidable.push(`event without its required fields: ${JSON.stringify(ev).slice(0, 200)}`);
      continue;
    }
    if (ev.e === 'acquire' && ev.result === 'ok') {
      if (ev.token === undefined) {
        undecidable.push(`acquisition of ${ev.key} by ${ev.node} succeeded without a token`);
        continue;
      }
      push(acquisitions, ev.key, ev);
      stats.acquisitions += 1;
    } else if (ev.e === 'put-invoke') {
      invoked.set(`${ev.node}#${ev.op}`, { key: ev.key, done: invoked.get(`${ev.node}#${ev.op}`)?.done ?? false });
    } else if (ev.e === 'put') {
      push(puts, ev.key, ev);
      if (ev.op !== undefined) invoked.set(`${ev.node}#${ev.op}`, { key: ev.key, done: true });
      if (ev.result === 'ok') stats.acceptedWrites += 1;
      if (ev.result === 'fenced') stats.fencedRefusals += 1;
    } else if (ev.e === 'delete' && ev.result === 'deleted') {
      push(deletes, ev.key, ev);
    } else if (ev.e === 'run' && ev.what === 'start') {
      runStarts.push(ev);
      stats.runs += 1;
    }
  }

  // token-order: tokens strictly increase in real time (different session, or a new token, after completion).
  for (const [key, acqs] of acquisitions) {
    for (const b of acqs) {
      for (const a of acqs) {
        if (a === b || a.completeM >= b.invokeM) continue;
        const ta = BigInt(a.token as string);
        const tb = BigInt(b.token as string);
        if (tb > ta) continue;
        if (tb === ta && a.session === b.session) continue; // re-acquisition by the holder
        report('token-order', key, `${b.node} got token ${tb} (session ${b.session}) after ${a.node} had got ${ta} (session ${a.session})`);
      }
    }
  }

  // overlap: a write accepted under t, invoked after a greater token of the same key was granted.
  const sortedAcqs = new Map<string, { completeM: number; maxToken: bigint; node: string }[]>();
  for (const [key, acqs] of acquisitions) {
    const sorted = [...acqs].sort((x, y) => x.completeM - y.completeM);
    let max = -1n;
    let maxNode = '';
    sortedAcqs.set(
      key,
      sorted.map((a) => {
        const t = BigInt(a.token as string);
        if (t > max) {
          max = t;
          maxNode = a.node;
        }
        return { completeM: a.completeM, maxToken: max, node: maxNode };
      }),
    );
  }
  for (const [key, ops] of puts) {
    for (const p of ops) {
      if (p.result !== 'ok' || p.fenceKey === undefined || p.fenceToken === undefined) continue;
      const granted = sortedAcqs.get(p.fenceKey) ?? [];
      let newest: { maxToken: bigint; node: string } | undefined;
      for (const g of granted) {
        if (g.completeM < p.invokeM) newest = g;
        else break;
      }
      const t = BigInt(p.fenceToken);
      if (newest && newest.maxToken > t) {
        report(
          'overlap',
          key,
          `${p.node} wrote under ${p.fenceKey} token ${t} after ${newest.node} had been granted token ${newest.maxToken}; the store accepted it`,
        );
      }
    }
  }

  // stale-write and lost-update, per written key, in the store's version order.
  const finalByKey = new Map(input.final.map((r) => [r.key, r]));
  const unanswered = new Map<string, number>();
  for (const { key, done } of invoked.values()) if (!done) unanswered.set(key, (unanswered.get(key) ?? 0) + 1);
  for (const [key, ops] of puts) {
    // A claim its writer withdrew (deleted at its version, after it was answered) is out of the record's
    // history: the key's next claim starts it anew, at version 1 again on some stores.
    const withdrawn = (p: PutOp) =>
      (deletes.get(key) ?? []).some((d) => d.node === p.node && d.ifVersion === p.version && d.invokeM > p.completeM);
    const accepted = ops.filter((p) => p.result === 'ok' && !withdrawn(p));
    if (accepted.length === 0 && ops.some((p) => p.result === 'ok')) continue;
    const unknown = ops.filter((p) => p.result === 'error').length + (unanswered.get(key) ?? 0);
    const byVersion = new Map<number, PutOp>();
    for (const p of accepted) {
      if (typeof p.version !== 'number') {
        undecidable.push(`accepted write to ${key} by ${p.node} without a version`);
        continue;
      }
      const twin = byVersion.get(p.version);
      if (twin) report('stale-write', key, `two accepted writes got version ${p.version} (${twin.node} and ${p.node}): one was lost`);
      byVersion.set(p.version, p);
    }
    const fenced = [...byVersion.values()].filter((p) => p.fenceToken !== undefined).sort((x, y) => (x.version as number) - (y.version as number));
    let highest: PutOp | undefined;
    for (const p of fenced) {
      if (highest && BigInt(p.fenceToken as string) < BigInt(highest.fenceToken as string)) {
        report(
          'stale-write',
          key,
          `version ${p.version} written by ${p.node} under token ${p.fenceToken} after version ${highest.version} under token ${highest.fenceToken}`,
        );
      } else {
        highest = p;
      }
    }
    if (!isCheckedKey(key)) continue;
    const claims = accepted.filter((p) => p.ifVersion === 'absent');
    if (claims.length > 1) report('double-claim', key, `${claims.length} unique inserts succeeded: ${claims.map((c) => c.node).join(', ')}`);
    const final = finalByKey.get(key);
    if (accepted.length > 0 && !final) {
      undecidable.push(`${key}: ${accepted.length} accepted writes but no record in the final state`);
      continue;
    }
    if (!final) continue;
    const maxAccepted = Math.max(0, ...accepted.map((p) => p.version ?? 0));
    if (final.version < maxAccepted || final.version > accepted.length + unknown) {
      report(
        'lost-update',
        key,
        `final version ${final.version}, but ${accepted.length} writes were accepted (highest version ${maxAccepted}) and ${unknown} had no answer`,
      );
    }
    if (key.startsWith('checkpoint/')) {
      const value = (final.value as { value?: unknown } | null)?.value;
      if (typeof value !== 'number') {
        undecidable.push(`${key}: final checkpoint value is not a number (${JSON.stringify(final.value)})`);
      } else if (value < accepted.length || value > accepted.length + unknown) {
        report('lost-update', key, `checkpoint counter is ${value}, but ${accepted.length} commits were accepted and ${unknown} had no answer`);
      }
    }
  }

  // double-run and unrecorded-run.
  const started = new Map<string, Extract<HistoryEvent, { e: 'run' }>>();
  for (const run of runStarts) {
    const id = `${run.task}@${run.tick}`;
    const first = started.get(id);
    if (first) report('double-run', id, `tick started by ${first.node} (token ${first.token}) and by ${run.node} (token ${run.token})`);
    else started.set(id, run);
    const record = finalByKey.get(runKeyOf(run.task, run.tick));
    const recordToken = (record?.value as { token?: string } | undefined)?.token;
    if (!record) report('unrecorded-run', id, `${run.node} started the tick but the store holds no record of it`);
    else if (recordToken !== run.token) {
      report('unrecorded-run', id, `${run.node} ran it under token ${run.token}, the store's claim has token ${String(recordToken)}`);
    }
  }

  // lost-tick: every tick between a task's first and last record is run or recorded missed.
  for (const task of input.tasks) {
    const prefix = `run/${task.name}/`;
    const records = input.final.filter((r) => r.key.startsWith(prefix));
    const covered = new Set<number>();
    for (const r of records) {
      const value = r.value as { tick?: number; status?: string; missed?: { from: number; count: number } };
      if (typeof value?.tick !== 'number') {
        // Manual-trigger records and the like carry other keys; a tick record without a tick is undecidable.
        if (/^\d+$/.test(r.key.slice(prefix.length))) undecidable.push(`${r.key}: run record without a tick`);
        continue;
      }
      if (value.status === 'missed' && value.missed) {
        stats.missedTicks += value.missed.count;
        for (let i = 0; i < value.missed.count && i < 1_000_000; i++) covered.add(value.missed.from + i * task.intervalMs);
        covered.add(value.tick);
      } else {
        covered.add(value.tick);
      }
    }
    if (covered.size === 0) continue;
    const ticks = [...covered].sort((a, b) => a - b);
    const first = ticks[0] as number;
    const last = ticks[ticks.length - 1] as number;
    if ((last - first) / task.intervalMs > 10_000_000) {
      undecidable.push(`task ${task.name}: tick range too large to check`);
      continue;
    }
    let lost = 0;
    let firstLost: number | undefined;
    for (let t = first; t <= last; t += task.intervalMs) {
      if (!covered.has(t)) {
        lost += 1;
        firstLost ??= t;
      }
    }
    if (lost > 0) report('lost-tick', `run/${task.name}`, `${lost} tick(s) neither run nor recorded missed, the first at ${firstLost}`);
  }

  if (stats.runs === 0) undecidable.push('no run started: the workload did not run, nothing can be concluded');
  return { ok: violations.length === 0 && undecidable.length === 0, violations, undecidable, stats };
}

export function runKeyOf(task: string, tick: number): string {
  return `run/${task}/${String(tick).padStart(15, '0')}`;
}

function isCheckedKey(key: string): boolean {
  return key.startsWith('run/') || key.startsWith('checkpoint/') || key.startsWith('chaos/');
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function isWellFormed(ev: HistoryEvent): boolean {
  if (typeof ev !== 'object' || ev === null || typeof (ev as { e?: unknown }).e !== 'string') return false;
  switch (ev.e) {
    case 'acquire':
      return typeof ev.key === 'string' && typeof ev.invokeM === 'number' && typeof ev.completeM === 'number' && typeof ev.session === 'string';
    case 'put':
      return typeof ev.key === 'string' && typeof ev.invokeM === 'number' && typeof ev.completeM === 'number' && typeof ev.result === 'string';
    case 'delete':
      return typeof ev.key === 'string' && typeof ev.ifVersion === 'number' && typeof ev.invokeM === 'number' && typeof ev.completeM === 'number';
    case 'run':
      return typeof ev.task === 'string' && typeof ev.tick === 'number' && typeof ev.token === 'string';
    default:
      return true;
  }
}
