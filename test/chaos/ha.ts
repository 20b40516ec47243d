/**
 * One failover of a replicated store (scripts/ha-replicas.sh) under the chaos workload: `nodes` in-process
 * nodes (workload.ts on the BUILT library, each on its own store handle) run one task every `everyMs`
 * with a lock loop beside it; after a warm-up `fault()` kills the primary and resolves once the new one
 * accepts writes; the run goes on for `afterMs`, then the history checker judges safety and the history
 * gives the availability figures. Used by test/integration/ha-*.test.ts and the `ha-replica` bench.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../../dist/core/clock.js';
import { openStore } from '../../dist/stores/open-store.js';
import type { Store } from '../../dist/stores/contract.js';
import { checkHistory, type CheckResult } from './checker.js';
import { monoNow, type FinalRecord, type HistoryEvent } from './history.js';
import { startWorkload, type Workload } from './workload.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/ha-replicas.sh', import.meta.url));

/** The replicated stores of scripts/ha-replicas.sh, as a user would name them. */
export const HA_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5433,127.0.0.1:5434/postgres?target_session_attrs=read-write&connectTimeoutMs=1000';
export const HA_REDIS_URL = 'redis+sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/baton-ha/0';

/** Runs scripts/ha-replicas.sh (bounded waits inside; 90 s at most here); its output, trimmed. */
export function haScript(...args: string[]): string {
  return execFileSync('bash', [SCRIPT, ...args], { encoding: 'utf8', timeout: 90_000 }).trim();
}

/** The PostgreSQL fault: kill -9 of the primary, promotion of the replica 1 s later (an operator's or a manager's decision). */
export async function killPrimaryAndPromote(): Promise<number> {
  haScript('pg-kill');
  await pause(1000);
  haScript('pg-promote'); // returns once the replica accepts writes
  return monoNow();
}

/** The Redis fault: kill -9 of the master; resolves when the Sentinels' new master accepts a write. */
export async function killMasterForSentinels(): Promise<number> {
  const old = haScript('redis-kill');
  haScript('redis-wait-failover', old);
  return monoNow();
}

export interface HaOptions {
  readonly url: string;
  readonly cluster: string;
  /** Kills the primary; resolves to monoNow() when the new primary accepts writes. */
  readonly fault: () => Promise<number>;
  readonly nodes?: number;
  readonly ttlMs?: number;
  readonly everyMs?: number;
  readonly warmupMs?: number;
  readonly afterMs?: number;
}

export interface HaResult {
  readonly check: CheckResult;
  /** Longest pause between two run starts of the task around the fault. */
  readonly gapMs: number;
  /** From the new primary accepting writes to the first run start after it. */
  readonly resumeMs: number;
  /** Ticks the scheduler recorded missed (`tick:missed` counts), over the whole run. */
  readonly missed: number;
  /** `session:lost` events, over all nodes. */
  readonly sessionsLost: number;
  readonly runs: number;
  /** Greatest fencing token of the task's owner key before the fault and after the new primary. */
  readonly tokens: { readonly before: bigint; readonly after: bigint };
}

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function runHaFailover(options: HaOptions): Promise<HaResult> {
  const { url, cluster, nodes = 3, ttlMs = 5000, everyMs = 500, warmupMs = 4000, afterMs = 8000 } = options;
  const events: HistoryEvent[] = [];
  const stores: Store[] = [];
  const workloads: Workload[] = [];
  let faultAt = Number.POSITIVE_INFINITY;
  let writableAt = Number.POSITIVE_INFINITY;
  try {
    for (let i = 0; i < nodes; i++) {
      const store = await openStore(url, { cluster, clock: systemClock });
      stores.push(store);
      const config = {
        store: url,
        cluster,
        id: `n${i}`,
        history: '',
        tasks: 1,
        everyMs,
        workMs: 20,
        ttlMs,
        locks: 1,
        skewMs: 0,
        unfenced: false,
        seed: i + 1,
      };
      workloads.push(
        await startWorkload({ config, store, clock: systemClock, pid: process.pid, record: (event) => events.push(event), tell: () => undefined }),
      );
    }
    await pause(warmupMs);
    faultAt = monoNow();
    writableAt = await options.fault();
    await pause(afterMs);
  } finally {
    await Promise.allSettled(workloads.map((w) => w.stop()));
    await Promise.allSettled(stores.map((s) => s.close()));
  }
  const final = await readFinal(url, cluster);
  const check = checkHistory({ events, final, tasks: [{ name: 't0', intervalMs: everyMs }] });

  const starts = events.flatMap((e) => (e.e === 'run' && e.what === 'start' ? [e.m] : [])).sort((a, b) => a - b);
  const lastBefore = starts.filter((m) => m < faultAt).at(-1) ?? Number.NaN;
  const firstAfter = starts.find((m) => m > writableAt) ?? Number.NaN;
  const tokens = events.flatMap((e) => (e.e === 'acquire' && e.result === 'ok' && e.key === 'task/t0' ? [{ m: e.completeM, token: BigInt(e.token ?? 0) }] : []));
  const max = (list: { token: bigint }[]) => list.reduce((a, b) => (b.token > a ? b.token : a), 0n);
  return {
    check,
    gapMs: Math.round(firstAfter - lastBefore),
    resumeMs: Math.round(firstAfter - writableAt),
    missed: events.reduce((n, e) => n + (e.e === 'missed' ? e.count : 0), 0),
    sessionsLost: events.filter((e) => e.e === 'session' && e.what === 'lost').length,
    runs: starts.length,
    tokens: { before: max(tokens.filter((t) => t.m < faultAt)), after: max(tokens.filter((t) => t.m > writableAt)) },
  };
}

/** One line of figures for a log. */
export function haSummary(label: string, r: HaResult): string {
  return (
    `ha ${label}: gap ${r.gapMs} ms, resumed ${r.resumeMs} ms after the new primary accepted writes, missed ${r.missed}, ` +
    `sessions lost ${r.sessionsLost}, runs ${r.runs}, violations ${r.check.violations.length + r.check.undecidable.length}, ` +
    `tokens ${r.tokens.before} -> ${r.tokens.after}`
  );
}

async function readFinal(url: string, cluster: string): Promise<FinalRecord[]> {
  const store = await openStore(url, { cluster, clock: systemClock });
  try {
    const records: FinalRecord[] = [];
    for (const prefix of ['run/', 'checkpoint/', 'chaos/']) {
      for (const r of await store.list(prefix)) records.push({ key: r.key, value: r.value, version: r.version });
    }
    return records;
  } finally {
    await store.close();
  }
}
