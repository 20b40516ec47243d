/**
 * Tick fidelity: one task every 1 s on 3 processes for `durationMs`, the owner SIGKILLed every
 * `killEveryMs` (at a random point within the following second) and replaced by a fresh process.
 * Lateness is the handler's start (Date.now() in the handler) minus the tick's scheduled time;
 * duplicates are ticks whose handler started more than once; missed are ticks between the first and the
 * last observed run whose handler never started (whether or not the scheduler recorded them as missed).
 */
import { ChildGroup } from './children.js';
import { summarize } from './stats.js';
import { jitter, progress, sleep, waitUntil } from './util.js';

export interface TickResult {
  lateP50: number | null;
  lateP99: number | null;
  lateMax: number | null;
  dup: number;
  missed: number;
  ticks: number;
  kills: number;
  durationS: number;
  /** Ticks the scheduler itself recorded as missed (tick:missed events). */
  recordedMissed: number;
}

export interface TickPlan {
  readonly durationMs: number;
  readonly killEveryMs: number;
  readonly intervalMs: number;
}

export interface TickRun {
  readonly tick: number;
  readonly lateMs: number;
  readonly node: string;
}

/** Counts lateness, duplicates and gaps in a sequence of runs of one `intervalMs` schedule. */
export function tickFidelity(runs: readonly TickRun[], intervalMs: number): Pick<TickResult, 'lateP50' | 'lateP99' | 'lateMax' | 'dup' | 'missed' | 'ticks'> {
  const seen = new Set<number>();
  let dup = 0;
  for (const r of runs) {
    if (seen.has(r.tick)) dup += 1;
    seen.add(r.tick);
  }
  const ticks = [...seen];
  const expected = ticks.length === 0 ? 0 : Math.round((Math.max(...ticks) - Math.min(...ticks)) / intervalMs) + 1;
  const late = summarize(runs.map((r) => r.lateMs));
  return { lateP50: late.p50, lateP99: late.p99, lateMax: late.max, dup, missed: expected - ticks.length, ticks: ticks.length };
}

export async function runTicks(label: string, store: string, cluster: string, plan: TickPlan): Promise<TickResult> {
  const group = new ChildGroup();
  let owner: string | undefined;
  let serial = 0;
  let kills = 0;
  let ending = false;
  const unsubscribe = group.subscribe((m) => {
    if (m.type === 'owner') owner = m.node;
    else if ((m.type === 'released' || m.type === 'lost') && owner === m.node) owner = undefined;
  });
  const spawn = () => group.spawn(`${label}-t${++serial}`, { kind: 'baton', store, cluster, tasks: [{ name: 'tick', every: `${plan.intervalMs}ms` }] });
  try {
    await Promise.all([spawn(), spawn(), spawn()]);
    await waitUntil(`${label}: first run`, () => group.messages.some((m) => m.type === 'run'), 15_000);
    const start = Date.now();
    let end = start + plan.durationMs;
    let lastKillAt = 0;
    let nextKill = start + plan.killEveryMs;
    while (Date.now() < end) {
      await sleep(Math.max(0, Math.min(end, nextKill) - Date.now()));
      if (Date.now() >= end) break;
      if (Date.now() >= nextKill) {
        await sleep(jitter(1000));
        const victim = owner ? group.byId(owner) : undefined;
        if (victim?.alive) {
          group.signal(victim, 'SIGKILL');
          kills += 1;
          lastKillAt = Date.now();
          progress(`${label} ticks: killed owner ${victim.id}`);
          await victim.exited;
          void spawn().catch((error: unknown) => {
            if (!ending) progress(`${label} ticks: respawn failed: ${String(error)}`);
          });
        }
        nextKill += plan.killEveryMs;
      }
    }
    // A failover still in progress at the end would hide its late and missed ticks: wait (bounded) for
    // the first run after the last kill and count up to it.
    if (lastKillAt > 0) {
      const after = () => group.messages.find((m) => m.type === 'run' && m.at > lastKillAt);
      await waitUntil(`${label}: a run after the last kill`, () => after() !== undefined, 20_000).catch(() => undefined);
      end = Math.max(end, after()?.at ?? end);
    }
    const runs = group.messages
      .filter((m) => m.type === 'run' && m.at <= end)
      .map((m) => ({ tick: m.tick as number, lateMs: m.lateMs as number, node: m.node }));
    const recordedMissed = group.messages.filter((m) => m.type === 'missed').reduce((n, m) => n + (m.count as number), 0);
    return { ...tickFidelity(runs, plan.intervalMs), kills, durationS: Math.round((end - start) / 1000), recordedMissed };
  } finally {
    ending = true;
    unsubscribe();
    await group.stopAll();
  }
}
