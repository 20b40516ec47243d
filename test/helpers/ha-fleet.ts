/**
 * Riding through the store's own failover (issue 22): 3 baton node processes (the chaos node, test/chaos/
 * node.ts, on the built dist/) on a 3-member etcd cluster or a 3-server ZooKeeper ensemble started by
 * scripts/ha-clusters.sh, with the default TTL (5 s) and one task every 500 ms, while members of the store
 * are killed with kill -9 and started again. Used by test/integration/ha-*.test.ts and `npm run bench --
 * --only ha`.
 *
 * Faults, one after the other on one fleet (each gets its own window of the history):
 * - `leader-kill`: the store's leader (etcd metrics, ZooKeeper `srvr`) is killed, started again 6 s later;
 * - `member-kill`: a follower the task's owner holds a connection to (found with `ss`) is killed, started
 *   again 6 s later — a follower anyway when the owner talks to the leader only, and the figures say so;
 * - `quorum-loss`: two followers are killed for 10 s, then started again one after the other.
 *
 * Figures per fault, from the nodes' histories (host-wide monotonic times): `gapMs` the longest interval
 * between two consecutive run starts that ends in the window, `missed` the ticks recorded missed in it,
 * `sessionsLost` the sessions the nodes gave up in it, `ownerDrops` the times an owner dropped the task; for quorum
 * loss `resumeMs`, from the moment the restarted member serves again (a quorum: the script waits for it)
 * to the first run start after it. Safety comes from the history checker over the whole run.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { checkHistory, type CheckResult } from '../chaos/checker.js';
import { monoNow, type HistoryEvent } from '../chaos/history.js';
import { readFinalState, readHistories, startProcessNode, type NodeMessage, type RunningNode } from '../chaos/harness.js';
import type { ChaosNodeConfig } from '../chaos/workload.js';

export type HaStore = 'etcd' | 'zookeeper';
export type HaFault = 'leader-kill' | 'member-kill' | 'quorum-loss';
export const HA_FAULTS: readonly HaFault[] = ['leader-kill', 'member-kill', 'quorum-loss'];

const SCRIPT = fileURLToPath(new URL('../../scripts/ha-clusters.sh', import.meta.url));
const TASK = 't0';
const EVERY_MS = 500;
const TTL_MS = 5000;
/** How long a killed member stays down (leader and member kill), and how long the fleet then settles. */
const DOWN_MS = 6000;
const SETTLE_MS = 3000;
const QUORUM_DOWN_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** scripts/ha-clusters.sh, bounded in time (its own waits are bounded too). */
function script(args: string[], timeoutMs = 150_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', [SCRIPT, ...args], { timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error) reject(new Error(`ha-clusters.sh ${args.join(' ')}: ${stderr.trim() || error.message}`));
      else resolve(stdout.trim());
    });
  });
}

/** One multi-member store cluster of scripts/ha-clusters.sh. */
export class HaCluster {
  readonly members: readonly string[];
  constructor(readonly store: HaStore) {
    this.members = store === 'etcd' ? ['e1', 'e2', 'e3'] : ['z1', 'z2', 'z3'];
  }
  up(): Promise<string> {
    return script(['up', this.store]);
  }
  down(): Promise<string> {
    return script(['down', this.store]);
  }
  url(): Promise<string> {
    return script(['url', this.store]);
  }
  kill(member: string): Promise<string> {
    return script(['kill', member]);
  }
  start(member: string): Promise<string> {
    return script(['start', member]);
  }
  /** The leader's name, waiting up to `timeoutMs` for one. */
  async leader(timeoutMs = 15_000): Promise<string> {
    const until = monoNow() + timeoutMs;
    for (;;) {
      const found = await script(['leader', this.store], 10_000).catch(() => '');
      if (found) return found;
      if (monoNow() > until) throw new Error(`ha: no ${this.store} leader within ${timeoutMs}ms`);
      await sleep(200);
    }
  }
  /** The members a process holds an established TCP connection to (client ports of the members). */
  connectedMembers(pid: number): string[] {
    const base = this.store === 'etcd' ? 23790 : 21810;
    const out = execFileSync('ss', ['-Htnp', 'state', 'established'], { encoding: 'utf8', timeout: 10_000 });
    const found = new Set<string>();
    for (const line of out.split('\n')) {
      if (!line.includes(`pid=${pid},`)) continue;
      // Recv-Q Send-Q local peer users:(…): the peer is the second address.
      const peer = /\S+:\d+\s+127\.0\.0\.1:(\d+)\s/.exec(line);
      const port = Number(peer?.[1]);
      const index = port - base;
      if (index >= 1 && index <= 3) found.add(this.members[index - 1] as string);
    }
    return [...found].sort();
  }
}

export interface FaultFigures {
  readonly fault: HaFault;
  /** What was killed, and anything the reader needs to read the figures right. */
  readonly detail: string;
  readonly gapMs: number;
  readonly missed: number;
  readonly sessionsLost: number;
  /** Times the owner dropped the task (`owner:lost`): a hand-over (`owner:released`) is not counted. */
  readonly ownerDrops: number;
  /** quorum-loss: first run start after the quorum served again. */
  readonly resumeMs?: number;
}

export interface HaRunResult {
  readonly store: HaStore;
  readonly figures: FaultFigures[];
  readonly check: CheckResult;
  readonly runs: number;
  /** Kept when the run failed (histories for a post-mortem). */
  readonly dir?: string;
}

interface Window {
  readonly fault: HaFault;
  readonly detail: string;
  readonly fromM: number;
  toM: number;
  quorumM?: number;
}

/**
 * Starts the cluster (idempotent), runs 3 node processes and the faults in order, stops the nodes and
 * checks the history. Every member is running again when it returns or throws.
 */
export async function runHaFaults(options: {
  store: HaStore;
  faults?: readonly HaFault[];
  /** Keep the histories even when the run passes. */
  keep?: boolean;
  log?: (line: string) => void;
}): Promise<HaRunResult> {
  const log = options.log ?? (() => undefined);
  const cluster = new HaCluster(options.store);
  await cluster.up();
  const url = await cluster.url();
  const dir = mkdtempSync(join(tmpdir(), `baton-ha-${options.store}-`));
  const name = `ha-${randomBytes(3).toString('hex')}`;
  const nodes: RunningNode[] = [];
  const pids = new Map<string, number>();
  let owner: string | undefined;
  let keep = false;
  const onMessage = (message: NodeMessage & { pid?: number }) => {
    if (message.type === 'ready') {
      pids.set(message.node, message.pid as number);
      const node = nodes.find((n) => n.id === message.node);
      if (node) node.ready = true;
    }
    if (message.type === 'owner' && message.task === TASK) owner = message.node;
    if (message.type === 'unowned' && message.task === TASK && owner === message.node) owner = undefined;
  };
  try {
    for (let i = 0; i < 3; i++) {
      const config: ChaosNodeConfig = {
        store: url,
        cluster: name,
        id: `n${i}`,
        history: join(dir, `n${i}.jsonl`),
        tasks: 1,
        everyMs: EVERY_MS,
        workMs: 20,
        ttlMs: TTL_MS,
        locks: 0,
        skewMs: 0,
        unfenced: false,
        seed: i + 1,
      };
      nodes.push(startProcessNode({ config, netns: undefined, dir, onMessage, onExit: () => undefined }));
    }
    await until(() => nodes.every((n) => n.ready) && owner !== undefined, 90_000, 'nodes ready and the task owned');
    // Placement hands the task to its assigned node a few seconds after the start: faults begin after it.
    let stableSince = monoNow();
    let seen = owner;
    await until(
      () => {
        if (owner !== seen) [seen, stableSince] = [owner, monoNow()];
        return owner !== undefined && monoNow() - stableSince >= 2 * SETTLE_MS;
      },
      60_000,
      'the task owned by one node for 6 s',
    );

    const windows: Window[] = [];
    for (const fault of options.faults ?? HA_FAULTS) {
      const leader = await cluster.leader();
      const ownerPid = pids.get(owner ?? '') ?? 0;
      const connected = ownerPid ? cluster.connectedMembers(ownerPid) : [];
      const followers = cluster.members.filter((m) => m !== leader);
      let victims: string[];
      let detail: string;
      if (fault === 'leader-kill') {
        victims = [leader];
        detail = `killed leader ${leader}; owner ${owner} connected to ${connected.join(',') || 'none'}`;
      } else if (fault === 'member-kill') {
        const target = followers.find((m) => connected.includes(m));
        victims = [target ?? (followers[0] as string)];
        detail = target
          ? `killed follower ${target}, connected to owner ${owner} (owner connected to ${connected.join(',')})`
          : `killed follower ${victims[0]}; owner ${owner} is connected to ${connected.join(',') || 'none'} only`;
      } else {
        victims = followers.slice(0, 2);
        detail = `killed followers ${victims.join(',')} for ${QUORUM_DOWN_MS / 1000} s (leader ${leader} alone)`;
      }
      log(`ha ${options.store}: ${fault}: ${detail}`);
      const window: Window = { fault, detail, fromM: monoNow(), toM: Infinity };
      windows.push(window);
      try {
        for (const m of victims) await cluster.kill(m);
        await sleep(fault === 'quorum-loss' ? QUORUM_DOWN_MS : DOWN_MS);
      } finally {
        for (const [i, m] of victims.entries()) {
          await cluster.start(m);
          // The first member back restores the quorum of a quorum loss: the script returns once it serves.
          if (i === 0) window.quorumM = monoNow();
        }
      }
      await cluster.leader();
      await sleep(fault === 'quorum-loss' ? SETTLE_MS * 2 : SETTLE_MS);
      window.toM = monoNow();
    }

    for (const node of nodes) if (node.alive) node.signal('SIGTERM');
    await Promise.race([Promise.all(nodes.map((n) => n.exited)), sleep(15_000)]);
    for (const node of nodes) if (node.alive) node.signal('SIGKILL');
    await Promise.all(nodes.map((n) => n.exited));

    const final = await readFinalState(url, name);
    const { events, malformed } = readHistories(dir);
    const check = checkHistory({ events, malformed, final, tasks: [{ name: TASK, intervalMs: EVERY_MS }] });
    const figures = windows.map((w) => figuresOf(w, events));
    keep = !check.ok || options.keep === true;
    return { store: options.store, figures, check, runs: check.stats.runs, ...(keep ? { dir } : {}) };
  } catch (error) {
    keep = true;
    throw error;
  } finally {
    for (const node of nodes) if (node.alive) node.signal('SIGKILL');
    await Promise.race([Promise.all(nodes.map((n) => n.exited)), sleep(5000)]);
    // Leave every member running for the next user of the cluster.
    await cluster.up().catch((error: unknown) => log(`ha ${options.store}: ${String(error)}`));
    if (!keep) rmSync(dir, { recursive: true, force: true });
    else log(`ha ${options.store}: histories kept in ${dir}`);
  }
}

function figuresOf(window: Window, events: readonly HistoryEvent[]): FaultFigures {
  const inWindow = (m: number) => m >= window.fromM && m < window.toM;
  const starts = events
    .filter((e): e is Extract<HistoryEvent, { e: 'run' }> => e.e === 'run' && e.what === 'start' && e.task === TASK)
    .map((e) => e.m)
    .sort((a, b) => a - b);
  let gapMs = 0;
  for (let i = 1; i < starts.length; i++) {
    const a = starts[i - 1] as number;
    const b = starts[i] as number;
    // A gap belongs to the window its closing run falls in: the next fault's outage, begun before this
    // window ended, is not this fault's.
    if (b > window.fromM && b < window.toM) gapMs = Math.max(gapMs, b - a);
  }
  // A window without any run start has a gap as long as the window (at least).
  if (!starts.some(inWindow)) gapMs = Math.max(gapMs, window.toM - window.fromM);
  const missed = events.filter((e) => e.e === 'missed' && e.task === TASK && inWindow(e.m)).reduce((n, e) => n + (e as { count: number }).count, 0);
  const sessionsLost = events.filter((e) => e.e === 'session' && e.what === 'lost' && inWindow(e.m)).length;
  const ownerDrops = events.filter((e) => e.e === 'owner' && e.what === 'lost' && e.task === TASK && inWindow(e.m)).length;
  const resume = window.quorumM === undefined ? undefined : starts.find((m) => m >= (window.quorumM as number));
  return {
    fault: window.fault,
    detail: window.detail,
    gapMs: Math.round(gapMs),
    missed,
    sessionsLost,
    ownerDrops,
    ...(window.fault === 'quorum-loss' ? { resumeMs: resume === undefined ? Infinity : Math.round(resume - (window.quorumM as number)) } : {}),
  };
}

async function until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const limit = monoNow() + timeoutMs;
  while (!done()) {
    if (monoNow() > limit) throw new Error(`ha: not ${what} within ${timeoutMs}ms`);
    await sleep(100);
  }
}
