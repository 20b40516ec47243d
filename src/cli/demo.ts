/**
 * `baton demo`: three node processes on a temporary SQLite file. Shows who owns which task and every tick,
 * SIGKILLs the owner of a task and measures the takeover, SIGTERMs the next owner and measures the graceful
 * hand-over, then stops everything and checks the run history for duplicate and missed ticks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { DemoMessage, DemoTask } from './demo-node.js';
import { randomId } from '../core/ids.js';
import type { StoreKind } from '../stores/contract.js';
import { openStore } from '../stores/open-store.js';
import { redactUrl } from '../core/redact.js';
import { sleep, systemClock } from '../core/clock.js';

export interface DemoOptions {
  readonly nodes: number;
  /** Keep the SQLite file at this path instead of a temporary one (tests inspect it afterwards). */
  readonly file?: string;
  /** Run on this store URL instead of a temporary SQLite file. */
  readonly store?: string;
  /** Cluster name; default "demo" on the temporary file, "demo-<random>" on a given store. */
  readonly cluster?: string;
  readonly json: boolean;
  /** Seconds to let the cluster run between the acts. */
  readonly actSeconds: number;
  /** Extra singleton tasks (`bulk-000` …) to show how tasks spread; the summary then has `spread`. */
  readonly tasks?: number;
  /**
   * Stops the demo (Ctrl-C): the nodes are stopped gracefully, the temporary directory is removed, and
   * `runDemo` rejects with the signal's reason.
   */
  readonly signal?: AbortSignal;
}

export interface DemoSummary {
  store: StoreKind;
  nodes: number;
  crashTakeoverMs: number;
  gracefulTakeoverMs: number;
  ticksRun: number;
  duplicateTicks: number;
  missedTicks: number;
  /** With `tasks`: the fewest and most tasks owned by one node once placement settled. */
  spread?: { min: number; max: number };
}

const TASKS: readonly DemoTask[] = [
  { name: 'sync-orders', every: '1s', workMs: 150 },
  { name: 'refresh-prices', every: '1s', workMs: 50 },
  { name: 'retry-failed', every: '2s', workMs: 100 },
  { name: 'send-digest', every: '3s', workMs: 200 },
];
const WATCHED = 'sync-orders';
const BULK = 'bulk-';

interface DemoNode {
  readonly id: string;
  readonly child: ChildProcess;
  pid: number;
  alive: boolean;
  readonly exited: Promise<void>;
}

class DemoError extends Error {}

export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const signal = options.signal ?? new AbortController().signal;
  const dir = mkdtempSync(join(tmpdir(), 'baton-demo-'));
  const store = options.store ?? `sqlite:${options.file ?? join(dir, 'baton.db')}`;
  const cluster = options.cluster ?? (options.store ? `demo-${randomId(4)}` : 'demo');
  // Opening once checks the URL, the driver and the server before any process starts, and names the store's kind.
  let kind: StoreKind;
  try {
    const probe = await openStore(store, { cluster });
    kind = probe.kind;
    await probe.close();
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const out = new Narrator(options.json);
  const messages: DemoMessage[] = [];
  const owners = new Map<string, string>();
  const waiters: { test: (m: DemoMessage) => boolean; resolve: (m: DemoMessage) => void }[] = [];
  const nodes: DemoNode[] = [];

  const onMessage = (message: DemoMessage) => {
    messages.push(message);
    if (message.type === 'owner') owners.set(message.task, message.node);
    if ((message.type === 'released' || message.type === 'lost') && owners.get(message.task) === message.node) {
      owners.delete(message.task);
    }
    out.message(message, owners);
    for (const waiter of [...waiters]) {
      if (waiter.test(message)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(message);
      }
    }
  };
  const waitFor = (what: string, test: (m: DemoMessage) => boolean, timeoutMs = 15_000): Promise<DemoMessage> =>
    new Promise((resolve, reject) => {
      const stop = (error: unknown) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        reject(error);
      };
      const onAbort = () => stop(signal.reason);
      const timer = setTimeout(() => stop(new DemoError(`demo: timed out after ${timeoutMs}ms waiting for ${what}`)), timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      waiters.push({ test, resolve: (m) => (clearTimeout(timer), signal.removeEventListener('abort', onAbort), resolve(m)) });
    });
  const pause = (seconds: number) => sleep(systemClock, seconds * 1000, signal);

  try {
    const tasks = [...TASKS, ...bulkTasks(options.tasks ?? 0)];
    out.say(`store ${redactUrl(store)} · cluster "${cluster}" · ${tasks.length} tasks · ${options.nodes} nodes`);
    out.act(`Act 1: ${options.nodes} nodes start and share the tasks (each tick runs on exactly one node)`);
    for (let i = 1; i <= options.nodes; i++) nodes.push(startNode(`node-${i}`, store, cluster, tasks, onMessage));
    await Promise.all(nodes.map((n) => waitFor(`${n.id} to start`, (m) => m.type === 'ready' && m.node === n.id)));
    for (const m of messages) if (m.type === 'ready') (nodes.find((n) => n.id === m.node) as DemoNode).pid = m.pid;

    await waitForSpread(owners, nodes, tasks.length, 30_000, signal);
    out.owners(owners, nodes);
    const spread = tasks.length > TASKS.length ? await settledSpread(owners, nodes, tasks.length, 60_000, signal) : undefined;
    if (spread) out.say(`→ ${tasks.length} tasks over ${nodes.length} nodes: ${spread.min}–${spread.max} per node`);
    await pause(options.actSeconds);

    const victim = nodeById(nodes, owners.get(WATCHED));
    out.act(`Act 2: kill -9 ${victim.id} (pid ${victim.pid}), the owner of ${WATCHED}, in the middle of a run`);
    await waitFor(`${victim.id} to start a run`, (m) => m.type === 'run' && m.task === WATCHED && m.node === victim.id);
    await pause(0.05);
    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    victim.alive = false;
    const crash = await waitFor(`a new owner of ${WATCHED}`, (m) => m.type === 'owner' && m.task === WATCHED && m.node !== victim.id);
    const crashTakeoverMs = crash.at - killedAt;
    out.say(`→ ${crash.node} took over ${WATCHED} ${crashTakeoverMs}ms after the SIGKILL`);
    await pause(options.actSeconds);

    const leaver = nodeById(nodes, owners.get(WATCHED));
    out.act(`Act 3: SIGTERM ${leaver.id} (pid ${leaver.pid}), the owner of ${WATCHED}: graceful hand-over`);
    const termAt = Date.now();
    leaver.child.kill('SIGTERM');
    const graceful = await waitFor(`a new owner of ${WATCHED}`, (m) => m.type === 'owner' && m.task === WATCHED && m.node !== leaver.id);
    const gracefulTakeoverMs = graceful.at - termAt;
    out.say(`→ ${graceful.node} took over ${WATCHED} ${gracefulTakeoverMs}ms after the SIGTERM`);
    await leaver.exited;
    leaver.alive = false;
    await pause(options.actSeconds);

    out.act('Finale: stopping the remaining nodes');
    for (const n of nodes) if (n.alive) n.child.kill('SIGTERM');
    await Promise.all(nodes.map((n) => n.exited));

    const summary: DemoSummary = {
      store: kind,
      nodes: options.nodes,
      crashTakeoverMs,
      gracefulTakeoverMs,
      ...countTicks(messages),
      ...(spread ? { spread } : {}),
    };
    out.summary(summary);
    return summary;
  } finally {
    // Interrupted: the nodes get SIGTERM (a graceful close releases their tasks), and SIGKILL after a grace.
    if (signal.aborted) out.say('interrupted: stopping the nodes');
    await stopNodes(nodes, signal.aborted ? 5000 : 0);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Stops the nodes still running: SIGTERM then, after `graceMs`, SIGKILL (at once with 0). */
async function stopNodes(nodes: readonly DemoNode[], graceMs: number): Promise<void> {
  const running = nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
  for (const n of running) n.child.kill(graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
  const killer = graceMs > 0 ? setTimeout(() => running.forEach((n) => n.child.kill('SIGKILL')), graceMs) : undefined;
  await Promise.all(nodes.map((n) => n.exited));
  clearTimeout(killer);
}

function bulkTasks(count: number): DemoTask[] {
  return Array.from({ length: count }, (_, i) => ({ name: `${BULK}${String(i).padStart(3, '0')}`, every: '10s', workMs: 0 }));
}

/**
 * Waits until every task is owned and ownership has not changed for 2 s, after the joiners' rebalance
 * delay (the default TTL, 5 s) has passed, then counts the tasks each node owns.
 */
async function settledSpread(owners: Map<string, string>, nodes: DemoNode[], total: number, timeoutMs: number, signal: AbortSignal): Promise<{ min: number; max: number }> {
  const deadline = Date.now() + timeoutMs;
  const rebalanced = Date.now() + 6000;
  let last = '';
  let stableSince = Date.now();
  while (Date.now() < deadline) {
    const snapshot = [...owners.entries()].sort().join(',');
    if (snapshot !== last) {
      last = snapshot;
      stableSince = Date.now();
    } else if (owners.size === total && Date.now() - stableSince >= 2000 && Date.now() >= rebalanced) {
      break;
    }
    await sleep(systemClock, 100, signal);
  }
  const counts = nodes.map((n) => [...owners.values()].filter((owner) => owner === n.id).length);
  return { min: Math.min(...counts), max: Math.max(...counts) };
}

function startNode(id: string, store: string, cluster: string, tasks: readonly DemoTask[], onMessage: (m: DemoMessage) => void): DemoNode {
  const cli = fileURLToPath(new URL('./main.js', import.meta.url));
  const child = spawn(process.execPath, [cli, 'demo-node', '--store', store, '--cluster', cluster, '--id', id, '--tasks', JSON.stringify(tasks)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    try {
      onMessage(JSON.parse(line) as DemoMessage);
    } catch {
      process.stderr.write(`${id}: ${line}\n`);
    }
  });
  return { id, child, pid: child.pid ?? 0, alive: true, exited };
}

function nodeById(nodes: DemoNode[], id: string | undefined): DemoNode {
  const node = nodes.find((n) => n.id === id && n.alive);
  if (!node) throw new DemoError(`demo: no live node owns ${WATCHED}`);
  return node;
}

async function waitForSpread(owners: Map<string, string>, nodes: DemoNode[], total: number, timeoutMs: number, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const wanted = Math.min(nodes.length, total);
  while (Date.now() < deadline) {
    const used = new Set(owners.values());
    if (owners.size === total && used.size >= wanted) return;
    await sleep(systemClock, 100, signal);
  }
  throw new DemoError(`demo: tasks did not spread over the nodes within ${timeoutMs}ms`);
}

/** Duplicate ticks: a (task, tick) started twice. Missed: a tick between a task's first and last run never started. */
export function countTicks(messages: readonly DemoMessage[]): Pick<DemoSummary, 'ticksRun' | 'duplicateTicks' | 'missedTicks'> {
  const started = new Map<string, Set<number>>();
  let ticksRun = 0;
  let duplicateTicks = 0;
  for (const m of messages) {
    if (m.type !== 'run') continue;
    ticksRun += 1;
    const ticks = started.get(m.task) ?? new Set<number>();
    if (ticks.has(m.tick)) duplicateTicks += 1;
    ticks.add(m.tick);
    started.set(m.task, ticks);
  }
  let missedTicks = 0;
  for (const task of TASKS) {
    const ticks = [...(started.get(task.name) ?? [])];
    if (ticks.length === 0) continue;
    const interval = Number.parseInt(task.every, 10) * 1000;
    const expected = (Math.max(...ticks) - Math.min(...ticks)) / interval + 1;
    missedTicks += expected - ticks.length;
  }
  return { ticksRun, duplicateTicks, missedTicks };
}

/** Human output (or nothing but the summary line with --json). */
class Narrator {
  readonly #json: boolean;
  readonly #started = Date.now();
  readonly #tty = process.stdout.isTTY === true;

  constructor(json: boolean) {
    this.#json = json;
  }

  say(text: string): void {
    if (!this.#json) process.stdout.write(`${this.#stamp()}  ${text}\n`);
  }

  act(text: string): void {
    if (!this.#json) process.stdout.write(`\n${this.#bold(text)}\n`);
  }

  message(m: DemoMessage, owners: Map<string, string>): void {
    if ('task' in m && m.task.startsWith(BULK)) return; // --tasks: counted, not narrated
    switch (m.type) {
      case 'run':
        this.say(`${m.node}  ▶ ${m.task.padEnd(15)} tick ${clock(m.tick)}  late ${String(m.lateMs).padStart(3)}ms  checkpoint ${m.checkpoint}`);
        break;
      case 'owner':
        this.say(`${m.node}  ★ now owns ${m.task} (fencing token ${m.token})`);
        this.owners(owners);
        break;
      case 'released':
        this.say(`${m.node}  ↪ released ${m.task} (${m.reason})`);
        break;
      case 'lost':
        this.say(`${m.node}  ✗ lost ${m.task}: ${m.reason}`);
        break;
      case 'missed':
        this.say(`${m.node}  ! ${m.count} tick(s) of ${m.task} missed (${m.reason})`);
        break;
      case 'closed':
        this.say(`${m.node}  ■ closed cleanly`);
        break;
      default:
        break;
    }
  }

  owners(owners: Map<string, string>, _nodes?: DemoNode[]): void {
    const line = TASKS.map((t) => `${t.name}→${owners.get(t.name) ?? '(none)'}`).join('  ');
    this.say(this.#dim(`owners: ${line}`));
  }

  summary(summary: DemoSummary): void {
    if (this.#json) {
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      return;
    }
    process.stdout.write(
      `\n${this.#bold('Summary')}\n` +
        `  crash takeover (SIGKILL → new owner):    ${summary.crashTakeoverMs} ms\n` +
        `  graceful takeover (SIGTERM → new owner): ${summary.gracefulTakeoverMs} ms\n` +
        `  ticks run: ${summary.ticksRun}, duplicate ticks: ${summary.duplicateTicks}, missed ticks: ${summary.missedTicks}\n`,
    );
  }

  #stamp(): string {
    return `+${((Date.now() - this.#started) / 1000).toFixed(3).padStart(7)}s`;
  }

  #bold(text: string): string {
    return this.#tty ? `\x1b[1m${text}\x1b[0m` : text;
  }

  #dim(text: string): string {
    return this.#tty ? `\x1b[2m${text}\x1b[0m` : text;
  }
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}
