/**
 * `baton agent`: runs the shell-command tasks of a config file on this host, as one node of the fleet
 * (src/agent/). Signals: SIGTERM / SIGINT hand every task over at once and exit; SIGHUP reloads the
 * config (an invalid one is logged with the field's path and the running config stays).
 * `baton agent --check`: validates a config and prints the next runs of each task, without a store.
 * `baton run TASK`: triggers a task cluster-wide (whichever agent owns it runs it once now).
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { sleep, systemClock } from '../core/clock.js';
import { ConfigError, toError } from '../core/errors.js';
import { defaultLogger } from '../core/logger.js';
import { hostname } from 'node:os';
import { requireDeclaration, sendControl } from '../scheduler/controls.js';
import { cliActor, requireKnownTask } from './console.js';
import { assertTaskName, triggerRunKey } from '../scheduler/keys.js';
import { soleUnit, type TaskName } from '../scheduler/names.js';
import type { RunRecord } from '../scheduler/task.js';
import { redactUrl } from '../core/redact.js';
import type { AgentConfig } from '../agent/config.js';
import { openExistingCluster } from './existing-cluster.js';

interface AgentCliOptions {
  config: string;
  check?: boolean;
  next: number;
}

interface RunCliOptions {
  config?: string;
  store?: string;
  cluster: string;
  wait?: boolean;
  timeout: number;
}

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('run the shell-command tasks of a config file once across the fleet (docs/operations.md); SIGTERM hands over, SIGHUP reloads')
    .requiredOption('--config <file>', 'agent config (YAML or JSON), e.g. baton.yaml')
    .option('--check', 'validate the config and print the next runs of each task, then exit (no store needed)')
    .option('--next <n>', 'with --check: how many next runs per task', integer(1, 100), 5)
    .action(async (opts: AgentCliOptions) => {
      const { loadAgentConfig } = await import('../agent/config.js');
      const config = await loadAgentConfig(opts.config);
      if (opts.check) {
        process.stdout.write(formatCheck(config, opts.next, systemClock.now()));
        return;
      }
      await runAgent(opts.config, config);
    });

  program
    .command('run')
    .description('trigger a task once now, cluster-wide: the node that owns it runs it (its record shows trigger: true)')
    .argument('<task>', 'task name')
    .option('--config <file>', 'take store and cluster from this agent config')
    .option('--store <url>', 'store URL (instead of --config)')
    .option('--cluster <name>', 'cluster name with --store', 'default')
    .option('--wait', 'wait for the run to end, print its outcome and output, exit 0 only if it succeeded')
    .option('--timeout <seconds>', 'with --wait: give up after this long', integer(1, 86_400), 3600)
    .action(async (task: string, opts: RunCliOptions) => {
      let store: string;
      let cluster = opts.cluster;
      if (opts.config !== undefined) {
        if (opts.store !== undefined) throw new ConfigError('baton run: give --config or --store, not both');
        const { loadAgentConfig } = await import('../agent/config.js');
        const config = await loadAgentConfig(opts.config);
        store = config.store;
        cluster = config.cluster;
      } else if (opts.store !== undefined) store = opts.store;
      else throw new ConfigError('baton run: --config <file> or --store <url> is required');
      const opened = await openExistingCluster(store, cluster);
      try {
        assertTaskName(task);
        await requireKnownTask(opened, task);
        const id = await sendControl(opened, 'trigger', task, { node: `cli-${hostname()}-${process.pid}`, now: systemClock.now(), actor: cliActor() });
        process.stdout.write(`triggered ${task} (id ${id}) in cluster "${cluster}" on ${redactUrl(store)}\n`);
        if (!opts.wait || id === undefined) return;
        const { mode } = await requireDeclaration(opened, task, 'run');
        if (mode === 'broadcast' || mode === 'sharded') {
          // One run per node or shard, each with its own record: nothing single to wait for.
          process.stdout.write(`not waiting: a ${mode} task runs once per ${mode === 'broadcast' ? 'node' : 'shard'}; see baton status\n`);
          return;
        }
        const record = await waitForRun(opened, task, id, opts.timeout * 1000);
        if (!record) {
          process.stderr.write(`baton run: no run of ${task} ended within ${opts.timeout}s (is an agent declaring it running?)\n`);
          process.exitCode = 1;
          return;
        }
        process.stdout.write(formatRun(record));
        if (record.status !== 'succeeded') process.exitCode = 1;
      } finally {
        await opened.close();
      }
    });
}

async function runAgent(path: string, config: AgentConfig): Promise<void> {
  // Its hand-overs and command exits are logged at info, the default level (BATON_LOG_LEVEL overrides).
  const logger = await defaultLogger();
  const say = (line: string) => process.stdout.write(`${line}\n`);
  // Installed before anything starts: SIGHUP's default action would kill the process, and a SIGTERM
  // during start-up must still end in a clean close.
  let hangups = 0;
  let onHangup = () => void hangups++;
  const hup = () => onHangup();
  process.on('SIGHUP', hup);
  const stopped = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  try {
    const { startAgent } = await import('../agent/agent.js');
    const { loadAgentConfig } = await import('../agent/config.js');
    const agent = await startAgent(config, { logger });
    const monitor = agent.monitor;
    say(`baton agent: node ${agent.cluster.node.id} in cluster "${config.cluster}" on ${redactUrl(config.store)}; tasks: ${[...config.tasks.keys()].join(', ')}${monitor?.url ? `; monitor ${monitor.url}` : ''}`);
    // A generated monitor token is shown this once (it is never logged), as `baton serve` does.
    if (monitor?.url && monitor.token !== null && config.monitor?.token === undefined) say(`open ${monitor.url}?token=${monitor.token}`);
    const reload = async () => {
      try {
        const diff = await agent.reload(await loadAgentConfig(path));
        const parts = (['added', 'removed', 'redeclared', 'updated', 'unchanged'] as const).map((k) => `${k}: ${diff[k].join(', ') || '-'}`);
        say(`baton agent: reloaded ${path}; ${parts.join('; ')}`);
        if (diff.restartNeeded.length > 0) {
          logger.warn({ fields: diff.restartNeeded }, `config reload: ${diff.restartNeeded.join(', ')} changed; they apply after a restart (running values kept)`);
        }
      } catch (error) {
        // The running config stays; the message names the file and the field.
        logger.error({ err: toError(error) }, 'config reload failed; still running the previous config');
        process.stderr.write(`baton agent: reload failed, still running the previous config:\n${toError(error).message}\n`);
      }
    };
    onHangup = () => void reload();
    // A SIGHUP received while starting: the file may have changed since it was read.
    if (hangups > 0) void reload();
    const signal = await stopped;
    say(`baton agent: ${signal}: stopping; handing tasks over`);
    await agent.close();
    say('baton agent: stopped');
  } finally {
    process.off('SIGHUP', hup);
  }
}

/** `--check`: each task's mode, schedule and next runs (UTC), and what the agent would connect to. */
export function formatCheck(config: AgentConfig, count: number, now: number): string {
  const lines = [`${config.source}: valid; cluster "${config.cluster}" on ${redactUrl(config.store)}; ${config.tasks.size} task(s)`];
  for (const task of config.tasks.values()) {
    const def = task.definition;
    const command = 'argv' in task.command ? JSON.stringify(task.command.argv) : task.command.script;
    lines.push('', `${task.name}  mode ${def.mode.kind}  ${def.schedule.description}${task.description ? `  — ${task.description}` : ''}`);
    lines.push(`  command: ${command}`);
    const next: string[] = [];
    for (let at: number | undefined = def.schedule.next(now); at !== undefined && next.length < count; at = def.schedule.next(at)) {
      next.push(new Date(at).toISOString());
    }
    lines.push(`  next: ${next.length > 0 ? next.join(', ') : '(none: its single tick has passed)'}`);
  }
  return `${lines.join('\n')}\n`;
}

async function waitForRun(store: import('../stores/contract.js').Store, task: TaskName, id: string, timeoutMs: number): Promise<RunRecord | undefined> {
  const deadline = systemClock.monotonic() + timeoutMs;
  while (systemClock.monotonic() < deadline) {
    // A task waited for has one unit (broadcast and sharded ones are not waited for): the task itself.
    const record = await store.get<RunRecord>(triggerRunKey(soleUnit(task), id));
    if (record && record.value.status !== 'running') return record.value;
    await sleep(systemClock, 250);
  }
  return undefined;
}

function formatRun(run: RunRecord): string {
  const lines = [`${run.task}: ${run.status} on ${run.node ?? '?'}${run.durationMs !== undefined ? ` in ${Math.round(run.durationMs)}ms` : ''}`];
  if (run.output) {
    lines.push(`exit: ${run.output.signal ?? run.output.exitCode}`);
    if (run.output.stdout) lines.push('--- stdout (tail) ---', run.output.stdout.trimEnd());
    if (run.output.stderr) lines.push('--- stderr (tail) ---', run.output.stderr.trimEnd());
  } else if (run.error) lines.push(run.error);
  return `${lines.join('\n')}\n`;
}

function integer(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}
