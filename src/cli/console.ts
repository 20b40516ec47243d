/**
 * The operator's commands on a running cluster: `baton trigger|pause|resume TASK`, `baton history TASK`,
 * `baton logs TASK`. Each works against the store (`--store URL --cluster NAME`, as `baton status`, or an
 * agent's `--config`) or
 * against a served monitor (`--monitor URL`, token from `--token` / `BATON_TOKEN`); the same history
 * reader (monitor/run-history.ts) answers both. A control sent through the store is recorded as `by: cli`
 * from `user@host`; through a monitor, as the monitor's token label from this host's address.
 */
import { hostname, userInfo } from 'node:os';
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { sleep, systemClock } from '../core/clock.js';
import { BatonError } from '../core/errors.js';
import { randomId } from '../core/ids.js';
import { readStatus } from '../monitor/status.js';
import { readRun, readRunHistory, RUN_STATUSES, type HistoryRun, type RunHistoryPage, type RunStatus } from '../monitor/run-history.js';
import { sendControl, type Actor, type ControlAction } from '../scheduler/controls.js';
import { assertTaskName } from '../scheduler/keys.js';
import type { TaskName, UnitName } from '../scheduler/names.js';
import type { Store } from '../stores/contract.js';
import { openExistingCluster } from './existing-cluster.js';

/** What `history` asks for besides the task. */
export interface HistoryFilters {
  readonly limit: number;
  readonly cursor?: string;
  readonly statuses?: readonly RunStatus[];
  readonly node?: string;
  readonly from?: number;
  readonly to?: number;
}

/** A cluster as the commands see it, through its store or through a monitor. */
interface ClusterConsole {
  /** @throws BatonError `TASK_NOT_FOUND` naming close matches when no node declares `task`. */
  requireTask(task: string): Promise<{ task: TaskName; units: UnitName[] }>;
  control(action: ControlAction, task: TaskName): Promise<string | undefined>;
  history(task: TaskName, filters: HistoryFilters): Promise<RunHistoryPage>;
  run(id: string): Promise<HistoryRun | undefined>;
  close(): Promise<void>;
}

interface TargetOptions {
  config?: string;
  store?: string;
  cluster: string;
  monitor?: string;
  token?: string;
}

/** A control sent by a command straight to the store: `cli`, from the OS user at this host. */
export function cliActor(): Actor {
  return { by: 'cli', address: `${userInfo().username}@${hostname()}` };
}

/** Task names like `wanted` (edit distance, or one containing the other), closest first. */
export function closeMatches(wanted: string, known: readonly string[], max = 5): string[] {
  const scored = known
    .map((name) => ({ name, distance: editDistance(wanted.toLowerCase(), name.toLowerCase()) }))
    .filter(({ name, distance }) => distance <= Math.max(2, Math.floor(wanted.length / 3)) || name.toLowerCase().includes(wanted.toLowerCase()) || wanted.toLowerCase().includes(name.toLowerCase()));
  return scored.sort((a, b) => a.distance - b.distance || a.name.localeCompare(b.name)).slice(0, max).map((s) => s.name);
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_v, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/** The error for a task no node declares, naming the close matches (or the first known tasks). */
export function unknownTaskError(task: string, cluster: string, known: readonly string[]): BatonError {
  const close = closeMatches(task, known);
  const hint =
    close.length > 0
      ? `did you mean ${close.map((n) => JSON.stringify(n)).join(', ')}?`
      : known.length === 0
        ? 'it declares no task'
        : `its tasks: ${known.slice(0, 20).map((n) => JSON.stringify(n)).join(', ')}${known.length > 20 ? ` and ${known.length - 20} more` : ''}`;
  return new BatonError('TASK_NOT_FOUND', `task ${JSON.stringify(task)} is not declared in cluster ${JSON.stringify(cluster)}: ${hint}`);
}

/**
 * The units of `task` as the store's status shows them (declared by a live node, or last declared).
 * @throws BatonError `TASK_NOT_FOUND` naming the close matches.
 */
export async function requireKnownTask(store: Store, task: string): Promise<{ task: TaskName; units: UnitName[] }> {
  const status = await readStatus(store);
  const units = status.tasks.filter((row) => row.task === task).map((row) => row.unit);
  if (units.length > 0) return { task: task as TaskName, units };
  throw unknownTaskError(task, store.cluster, [...new Set(status.tasks.map((row) => row.task))].sort());
}

class StoreConsole implements ClusterConsole {
  readonly #store: Store;
  readonly #id = `cli-${hostname()}-${process.pid}-${randomId(3)}`;
  readonly #units = new Map<TaskName, UnitName[]>();

  constructor(store: Store) {
    this.#store = store;
  }

  async requireTask(task: string): Promise<{ task: TaskName; units: UnitName[] }> {
    const known = await requireKnownTask(this.#store, task);
    this.#units.set(known.task, known.units);
    return known;
  }

  control(action: ControlAction, task: TaskName): Promise<string | undefined> {
    return sendControl(this.#store, action, task, { node: this.#id, now: systemClock.now(), actor: cliActor() });
  }

  history(task: TaskName, filters: HistoryFilters): Promise<RunHistoryPage> {
    const { statuses, ...rest } = filters;
    return readRunHistory(this.#store, { units: this.#units.get(task) ?? [task as string as UnitName], ...rest, ...(statuses ? { statuses: new Set(statuses) } : {}) });
  }

  run(id: string): Promise<HistoryRun | undefined> {
    return readRun(this.#store, id);
  }

  close(): Promise<void> {
    return this.#store.close();
  }
}

class MonitorConsole implements ClusterConsole {
  readonly #base: URL;
  readonly #token: string | undefined;

  constructor(url: string, token: string | undefined) {
    let base: URL;
    try {
      base = new URL(url.endsWith('/') ? url : `${url}/`);
    } catch {
      throw new BatonError('CONFIG_INVALID', `--monitor: expected the monitor's address (http://127.0.0.1:7070/), got ${JSON.stringify(url)}`);
    }
    this.#base = base;
    this.#token = token;
  }

  async #call<T>(method: 'GET' | 'POST', path: string): Promise<{ status: number; body: T & { error?: string } }> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.#base), { method, headers: this.#token !== undefined ? { Authorization: `Bearer ${this.#token}` } : {} });
    } catch (error) {
      throw new BatonError('MONITOR_UNAVAILABLE', `monitor ${this.#base.href}: ${error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error)}`, { cause: error });
    }
    const body = (await res.json().catch(() => ({ error: `not JSON (HTTP ${res.status})` }))) as T & { error?: string };
    if (res.status === 401) throw new BatonError('MONITOR_REFUSED', `monitor ${this.#base.href}: ${body.error ?? 'refused'} (give --token or set BATON_TOKEN)`);
    return { status: res.status, body };
  }

  #fail(what: string, status: number, error: string | undefined): BatonError {
    return new BatonError('MONITOR_REFUSED', `monitor ${this.#base.href}: ${what}: HTTP ${status}: ${error ?? 'no reason given'}`);
  }

  async requireTask(task: string): Promise<{ task: TaskName; units: UnitName[] }> {
    const { status, body } = await this.#call<{ cluster: string; tasks: { task: string; unit: UnitName }[] }>('GET', 'api/status');
    if (status !== 200) throw this.#fail('status', status, body.error);
    const known = [...new Set(body.tasks.map((t) => t.task))].sort();
    if (known.includes(task)) return { task: task as TaskName, units: body.tasks.filter((t) => t.task === task).map((t) => t.unit) };
    throw unknownTaskError(task, body.cluster, known);
  }

  async control(action: ControlAction, task: TaskName): Promise<string | undefined> {
    const { status, body } = await this.#call<{ trigger?: string }>('POST', `api/tasks/${encodeURIComponent(task)}/${action}`);
    if (status !== 200) throw this.#fail(action, status, body.error);
    return body.trigger;
  }

  async history(task: TaskName, filters: HistoryFilters): Promise<RunHistoryPage> {
    const query = new URLSearchParams({ task, limit: String(filters.limit) });
    if (filters.cursor !== undefined) query.set('cursor', filters.cursor);
    if (filters.statuses) query.set('outcome', filters.statuses.join(','));
    if (filters.node !== undefined) query.set('node', filters.node);
    if (filters.from !== undefined) query.set('from', String(filters.from));
    if (filters.to !== undefined) query.set('to', String(filters.to));
    const { status, body } = await this.#call<RunHistoryPage>('GET', `api/runs?${query}`);
    if (status !== 200) throw this.#fail('history', status, body.error);
    return body;
  }

  async run(id: string): Promise<HistoryRun | undefined> {
    const { status, body } = await this.#call<{ runs: HistoryRun[] }>('GET', `api/runs?${new URLSearchParams({ id })}`);
    if (status === 404) return undefined;
    if (status !== 200) throw this.#fail('run', status, body.error);
    return body.runs[0];
  }

  async close(): Promise<void> {}
}

async function openConsole(opts: TargetOptions, command: string): Promise<ClusterConsole> {
  if (opts.monitor !== undefined) {
    if (opts.store !== undefined || opts.config !== undefined) throw new BatonError('CONFIG_INVALID', `baton ${command}: give --store, --config or --monitor, not several`);
    return new MonitorConsole(opts.monitor, opts.token);
  }
  if (opts.config !== undefined) {
    if (opts.store !== undefined) throw new BatonError('CONFIG_INVALID', `baton ${command}: give --config or --store, not both`);
    const { loadAgentConfig } = await import('../agent/config.js');
    const config = await loadAgentConfig(opts.config);
    return new StoreConsole(await openExistingCluster(config.store, config.cluster));
  }
  if (opts.store === undefined) throw new BatonError('CONFIG_INVALID', `baton ${command}: --store <url> (with --cluster), --config <file> or --monitor <url> is required`);
  return new StoreConsole(await openExistingCluster(opts.store, opts.cluster));
}

function addTarget(command: Command): Command {
  return command
    .option('--store <url>', 'store URL of the cluster, e.g. sqlite:./baton.db')
    .option('--cluster <name>', 'cluster name with --store', 'default')
    .option('--config <file>', 'take store and cluster from this agent config (instead of --store)')
    .option('--monitor <url>', 'a monitor served by `baton serve` or an agent (instead of --store), e.g. http://127.0.0.1:7070/')
    .addOption(new Option('--token <token>', 'with --monitor: its bearer token').env('BATON_TOKEN'));
}

const iso = (ms: number | undefined): string => (ms === undefined ? '-' : new Date(ms).toISOString().replace('.000Z', 'Z'));
const ms = (value: number | undefined): string => (value === undefined ? '-' : value >= 10_000 ? `${(value / 1000).toFixed(1)}s` : `${Math.round(value)}ms`);

/** One line per run, newest first: id, tick, outcome, node, token, lateness, duration, attempts, error. */
export function formatHistory(runs: readonly HistoryRun[]): string {
  const rows = runs.map((run) => [
    run.id,
    iso(run.tick),
    run.status === 'missed' && run.missed ? `missed×${run.missed.count} (${run.missed.reason})` : `${run.status}${run.trigger ? ' (trigger)' : ''}`,
    run.host !== undefined ? `${run.host}:${run.pid ?? '?'}` : (run.node ?? '-'),
    run.token ?? '-',
    ms(run.lateMs),
    ms(run.durationMs),
    run.attempts !== undefined ? String(run.attempts) : '-',
    (run.error ?? (run.output ? `exit ${run.output.signal ?? run.output.exitCode}` : '')).split('\n')[0]?.slice(0, 100) ?? '',
  ]);
  const header = ['RUN', 'TICK', 'OUTCOME', 'NODE', 'TOKEN', 'LATE', 'DURATION', 'ATTEMPTS', 'ERROR'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  return [header, ...rows].map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] as number))).join('  ').trimEnd()).join('\n');
}

/** A run and its output (a command's exit and the tails of stdout and stderr), or its error. */
export function formatRunLog(run: HistoryRun): string {
  const where = run.host !== undefined ? ` on ${run.host}:${run.pid ?? '?'}` : run.node ? ` on ${run.node}` : '';
  const lines = [`=== ${run.id}  ${iso(run.tick)}  ${run.status}${where}${run.durationMs !== undefined ? ` in ${ms(run.durationMs)}` : ''}${run.token ? `  token ${run.token}` : ''}`];
  if (run.output) {
    lines.push(`exit: ${run.output.signal ?? run.output.exitCode}`);
    const cut = (bytes: number, text: string) => (bytes > Buffer.byteLength(text) ? ` (last ${Buffer.byteLength(text)} of ${bytes} bytes)` : '');
    if (run.output.stdout) lines.push(`--- stdout${cut(run.output.stdoutBytes, run.output.stdout)} ---`, run.output.stdout.trimEnd());
    if (run.output.stderr) lines.push(`--- stderr${cut(run.output.stderrBytes, run.output.stderr)} ---`, run.output.stderr.trimEnd());
    if (!run.output.stdout && !run.output.stderr) lines.push('(no output)');
  } else if (run.status === 'running') lines.push('(running: a command\'s output is stored when it ends)');
  else if (run.status === 'missed' && run.missed) lines.push(`missed ${run.missed.count} tick(s) from ${iso(run.missed.from)}: ${run.missed.reason}`);
  else lines.push(run.error ?? '(no output recorded: not a command of `baton agent`)');
  if (run.error && run.output) lines.push(`error: ${run.error}`);
  return `${lines.join('\n')}\n`;
}

function parseTime(value: string): number {
  if (/^\d{1,15}$/.test(value)) return Number(value);
  const relative = /^(\d+)(s|m|h|d)$/.exec(value);
  if (relative) return systemClock.now() - Number(relative[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[relative[2] as 's' | 'm' | 'h' | 'd'];
  const at = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(at)) throw new InvalidArgumentError('expected an ISO time (2026-12-07T15:00:00Z), ms since the epoch, or an age (30m, 2h, 7d)');
  return at;
}

function parseOutcomes(value: string, previous: RunStatus[] | undefined): RunStatus[] {
  const asked = value.split(',');
  const bad = asked.find((s) => !(RUN_STATUSES as readonly string[]).includes(s));
  if (bad !== undefined) throw new InvalidArgumentError(`unknown outcome ${JSON.stringify(bad)} (known: ${RUN_STATUSES.join(', ')})`);
  return [...(previous ?? []), ...(asked as RunStatus[])];
}

function integer(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

async function withConsole<T>(opts: TargetOptions, command: string, task: string, work: (console: ClusterConsole, task: TaskName, units: UnitName[]) => Promise<T>): Promise<T> {
  assertTaskName(task);
  const target = await openConsole(opts, command);
  try {
    const known = await target.requireTask(task);
    return await work(target, known.task, known.units);
  } finally {
    await target.close();
  }
}

export function registerConsole(program: Command): void {
  const say = (text: string) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  const done: Record<ControlAction, string> = { trigger: 'triggered', pause: 'paused', resume: 'resumed' };
  const described: Record<ControlAction, string> = {
    trigger: 'run a task once now, cluster-wide, on the node that owns it (recorded as trigger: true)',
    pause: 'pause a task cluster-wide: its owner runs no tick (ticks are recorded missed, reason paused) until resume',
    resume: 'resume a paused task cluster-wide',
  };
  for (const action of ['trigger', 'pause', 'resume'] as const) {
    addTarget(program.command(action).description(described[action]).argument('<task>', 'task name')).action(async (task: string, opts: TargetOptions) => {
      await withConsole(opts, action, task, async (target, name, units) => {
        const trigger = await target.control(action, name);
        if (trigger === undefined) return say(`${done[action]} ${name}`);
        // The run's id, as history and logs name it: one per unit (each shard of a sharded task runs it).
        const runs = units.map((unit) => `${unit}/${trigger.replace(/^0+(?=\d)/, '')}`);
        say(`${done[action]} ${name}: run ${runs.join(', ')}`);
        if (runs.length === 1) say(`its output when it ends: baton logs ${name} --run ${runs[0]} --follow`);
      });
    });
  }

  addTarget(
    program
      .command('history')
      .description("a task's runs, newest first: tick, outcome, node host:pid, token, lateness, duration, attempts, error")
      .argument('<task>', 'task name'),
  )
    .option('--outcome <outcome>', `only runs with this outcome (${RUN_STATUSES.join(', ')}; comma-separated or repeated)`, parseOutcomes)
    .option('--node <node>', 'only runs of this node (id, host:pid or host)')
    .option('--since <time>', 'only runs with a tick at or after this (ISO time, ms since the epoch, or an age: 30m, 2h, 7d)', parseTime)
    .option('--until <time>', 'only runs with a tick before this', parseTime)
    .option('--limit <n>', 'runs per page', integer(1, 1000), 20)
    .option('--cursor <cursor>', 'the next page (printed at the end of the previous one)')
    .option('--json', 'print the page as JSON ({ runs, next })')
    .action(async (task: string, opts: TargetOptions & { outcome?: RunStatus[]; node?: string; since?: number; until?: number; limit: number; cursor?: string; json?: boolean }) => {
      await withConsole(opts, 'history', task, async (target, name) => {
        const page = await target.history(name, {
          limit: opts.limit,
          ...(opts.cursor !== undefined ? { cursor: opts.cursor } : {}),
          ...(opts.outcome ? { statuses: opts.outcome } : {}),
          ...(opts.node !== undefined ? { node: opts.node } : {}),
          ...(opts.since !== undefined ? { from: opts.since } : {}),
          ...(opts.until !== undefined ? { to: opts.until } : {}),
        });
        if (opts.json) return say(JSON.stringify(page));
        if (page.runs.length === 0) return say(`${name}: no run${opts.outcome || opts.node || opts.since || opts.until ? ' matches the filters' : ' recorded yet'}`);
        say(formatHistory(page.runs));
        if (page.next) say(`more: --cursor ${page.next}`);
      });
    });

  addTarget(program.command('logs').description("a run's output (a command's exit code and the tails of stdout and stderr) or error; the newest run by default").argument('<task>', 'task name'))
    .option('--run <id>', 'this run (its id as `baton history` prints it)')
    .option('--follow', 'then wait: print each run as it ends (with --run: wait for that run to be written and to end), until Ctrl-C')
    .action(async (task: string, opts: TargetOptions & { run?: string; follow?: boolean }) => {
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      if (opts.follow) process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
      try {
        await withConsole(opts, 'logs', task, async (target, name) => followLogs(target, name, opts.run, opts.follow === true, say, stop.signal));
      } finally {
        process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
      }
    });
}

/** How often `logs --follow` reads the history. */
const FOLLOW_EVERY_MS = 1000;

async function followLogs(target: ClusterConsole, task: TaskName, runId: string | undefined, follow: boolean, say: (text: string) => void, signal: AbortSignal): Promise<void> {
  if (runId !== undefined) {
    if (!runId.startsWith(`${task}/`) && !runId.startsWith(`${task}#`) && !runId.startsWith(`${task}@`)) {
      throw new BatonError('CONFIG_INVALID', `--run ${JSON.stringify(runId)}: not a run of ${task} (ids look like ${task}/1733580000000; see baton history ${task})`);
    }
    for (;;) {
      const run = await target.run(runId);
      // With --follow, a run not yet written is waited for: a trigger's record appears when its owner claims it.
      if (!run && !follow) throw new BatonError('RUN_NOT_FOUND', `run ${JSON.stringify(runId)} is not in the store (pruned by the task's history retention, or never written); see baton history ${task}`);
      if (run && (!follow || run.status !== 'running')) return say(formatRunLog(run));
      await sleep(systemClock, FOLLOW_EVERY_MS, signal).catch(() => undefined);
      if (signal.aborted) return;
    }
  }
  const newest = (await target.history(task, { limit: 1 })).runs[0];
  if (!newest && !follow) return say(`${task}: no run recorded yet`);
  if (newest && (!follow || newest.status !== 'running')) say(formatRunLog(newest));
  if (!follow) return;
  // Printed once each when ended; a run seen running is printed when it ends.
  const printed = new Set(newest && newest.status !== 'running' ? [newest.id] : []);
  const since = newest?.tick ?? 0;
  while (!signal.aborted) {
    await sleep(systemClock, FOLLOW_EVERY_MS, signal).catch(() => undefined);
    if (signal.aborted) break;
    const { runs } = await target.history(task, { limit: 50, from: since });
    for (const run of runs.reverse()) {
      if (run.status === 'running' || printed.has(run.id)) continue;
      printed.add(run.id);
      say(formatRunLog(run));
    }
  }
}
