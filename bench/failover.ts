/**
 * Failover gap: the owner of a task (or the leader of a peer's election) gets SIGKILL (crash), SIGTERM
 * (graceful: the process closes and exits) or SIGSTOP (host-loss-like: it exists but does nothing). The
 * gap is from the signal to the moment another process reports it owns the task (`owner` message, its
 * own Date.now(); every process is on this host). After a SIGSTOP trial the paused ex-owner gets SIGCONT
 * and is watched for `stopObserveMs`: any run it starts after waking is a self-fencing violation.
 * Between trials the fleet is topped up to `nodes` live processes (a stopped-then-woken node stays).
 */
import { ChildGroup, type Child, type ChildMessage } from './children.js';
import { summarize, type Summary } from './stats.js';
import { jitter, progress, sleep, waitUntil } from './util.js';

export type FailoverKind = 'kill' | 'term' | 'stop';
const SIGNAL: Record<FailoverKind, NodeJS.Signals> = { kill: 'SIGKILL', term: 'SIGTERM', stop: 'SIGSTOP' };

export interface FailoverResult extends Summary {
  readonly gapsMs: number[];
  /** Trials where no other process took over within the timeout. */
  readonly timeouts: number;
  /** SIGSTOP only: runs the woken ex-owner started after SIGCONT (must be 0), and how many woke self-fenced. */
  readonly zombieRuns?: number;
  readonly selfFenced?: number;
}

export interface FleetOptions {
  /** Starts one process with this id; resolves when it is ready. */
  readonly spawn: (group: ChildGroup, id: string) => Promise<Child>;
  readonly nodes: number;
  /** Only owner/run messages about this task count (baton); undefined: every owner message (peers). */
  readonly task?: string;
  readonly label: string;
}

export interface TrialPlan {
  readonly kinds: readonly FailoverKind[];
  readonly trials: Readonly<Record<FailoverKind, number>>;
  /** Longest wait for a takeover. */
  readonly timeoutMs: number;
  readonly stopObserveMs: number;
}

export async function runFailover(fleet: FleetOptions, plan: TrialPlan): Promise<Partial<Record<FailoverKind, FailoverResult>>> {
  const group = new ChildGroup();
  let owner: string | undefined;
  let serial = 0;
  const about = (m: ChildMessage) => fleet.task === undefined || m.task === fleet.task;
  const track = (m: ChildMessage) => {
    if (!about(m)) return;
    if (m.type === 'owner') owner = m.node;
    else if ((m.type === 'released' || m.type === 'lost') && owner === m.node) owner = undefined;
  };
  const results: Partial<Record<FailoverKind, FailoverResult>> = {};
  const unsubscribe = group.subscribe(track);
  try {
    const topUp = async () => {
      const missing = fleet.nodes - group.live().length;
      await Promise.all(Array.from({ length: Math.max(0, missing) }, () => fleet.spawn(group, `${fleet.label}-n${++serial}`)));
    };
    for (const kind of plan.kinds) {
      const gaps: number[] = [];
      let timeouts = 0;
      let zombieRuns = 0;
      let selfFenced = 0;
      for (let trial = 0; trial < plan.trials[kind]; trial++) {
        await topUp();
        await waitUntil(`${fleet.label}: an owner`, () => {
          const c = owner ? group.byId(owner) : undefined;
          return c !== undefined && c.alive && !c.stopped;
        }, plan.timeoutMs);
        await sleep(200 + jitter(300)); // off any fixed phase of ticks, scans and renewals
        const victim = group.byId(owner as string) as Child;
        if (!victim.alive || victim.stopped) continue; // ownership moved during the pause: counts as a skipped trial
        let outcome = 'no takeover within timeout';
        const t0 = Date.now();
        group.signal(victim, SIGNAL[kind]);
        try {
          const m = await group.waitFor(`${fleet.label} ${kind}: new owner`, (x) => x.type === 'owner' && about(x) && x.node !== victim.id && x.at >= t0, plan.timeoutMs);
          gaps.push(m.at - t0);
          outcome = `${m.at - t0}ms`;
        } catch {
          timeouts += 1;
        }
        if (kind === 'stop') {
          await sleep(200);
          const t1 = Date.now();
          group.signal(victim, 'SIGCONT');
          await sleep(plan.stopObserveMs);
          const after = group.messages.filter((x) => x.node === victim.id && x.at >= t1);
          zombieRuns += after.filter((x) => x.type === 'run' && about(x)).length;
          if (after.some((x) => x.type === 'session-lost' || (x.type === 'lost' && about(x)))) selfFenced += 1;
          // A woken ex-owner that believes it still leads (a peer without self-fencing) would confuse the next trial.
          if (owner === victim.id || zombieRuns > 0) {
            group.signal(victim, 'SIGKILL');
            await victim.exited;
          }
        } else {
          const killer = setTimeout(() => victim.process.kill('SIGKILL'), 10_000);
          await victim.exited;
          clearTimeout(killer);
        }
        progress(`${fleet.label} ${kind} #${trial + 1}: ${outcome}`);
      }
      results[kind] = {
        ...summarize(gaps),
        gapsMs: gaps,
        timeouts,
        ...(kind === 'stop' ? { zombieRuns, selfFenced } : {}),
      };
    }
  } finally {
    unsubscribe();
    await group.stopAll();
  }
  return results;
}

/** The spawn function of a baton fleet on one store, with one task ticking every `every`. */
export function batonFleet(store: string, cluster: string, every: string, extra: Record<string, unknown> = {}) {
  return (group: ChildGroup, id: string) =>
    group.spawn(id, { kind: 'baton', store, cluster, tasks: [{ name: 'watched', every }], rebalanceAfter: '1h', ...extra });
}
