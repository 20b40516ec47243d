/**
 * The operator's commands (issue 24) as real processes of the built CLI against a live `baton agent` on
 * SQLite: `history` pages and filters, `trigger` then `logs --run --follow` shows that run's output,
 * `pause` records missed ticks and `resume` ends them, each control recorded with who and from where, an
 * unknown task named with its close matches, `logs --follow` printing runs as they end, and the same
 * commands through a served monitor (`--monitor`), whose own actions are recorded with its token label.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StampedEvent } from '../../src/monitor/monitor-events.js';
import type { HistoryRun, RunHistoryPage } from '../../src/monitor/run-history.js';
import { recentActions } from '../../src/scheduler/controls.js';
import { openStore } from '../../src/stores/open-store.js';

const CLI = resolve(import.meta.dirname, '../../dist/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'baton-console-'));
const storeUrl = `sqlite:${join(dir, 'baton.db')}`;
const target = ['--store', storeUrl, '--cluster', 'ops'];
const children = new Set<ChildProcess>();

function cli(args: readonly string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...env } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function json<T>(args: readonly string[], env: NodeJS.ProcessEnv = {}): T {
  const result = cli([...args, '--json'], env);
  expect(result.status, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

/** Spawns the CLI; resolves with the first stdout line `ready` accepts; `lines` keeps every line. */
function start(args: readonly string[], ready: (line: string) => boolean, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; line: string; lines: string[] }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const lines: string[] = [];
  return new Promise((resolvePromise, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      if (ready(line)) resolvePromise({ child, line, lines });
    });
    child.once('exit', (code, signal) => reject(new Error(`${args.join(' ')} exited (${code ?? signal}) before it was ready`)));
  });
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  const config = join(dir, 'baton.yaml');
  writeFileSync(
    config,
    [
      `store: ${storeUrl}`,
      'cluster: ops',
      'tasks:',
      '  greet:',
      '    every: 1s',
      '    command: echo "hello $BATON_TICK"; echo "a warning" >&2',
      '  failing:',
      '    every: 1s',
      '    command: echo "disk full"; exit 3',
    ].join('\n'),
  );
  await start(['agent', '--config', config], (line) => line.startsWith('baton agent: node'));
  await until('4 runs of each task', () => {
    const ok = ['greet', 'failing'].every((task) => {
      const result = cli(['history', task, ...target, '--limit', '4', '--outcome', 'succeeded,failed', '--json']);
      return result.status === 0 && (JSON.parse(result.stdout) as RunHistoryPage).runs.length === 4;
    });
    return ok ? true : undefined;
  });
}, 60_000);

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('baton history', () => {
  it('pages newest first without overlap and filters by outcome; the table names node, token and error', () => {
    const first = json<RunHistoryPage>(['history', 'greet', ...target, '--limit', '2', '--outcome', 'succeeded']);
    expect(first.runs).toHaveLength(2);
    expect(first.next).toBeDefined();
    const second = json<RunHistoryPage>(['history', 'greet', ...target, '--limit', '2', '--outcome', 'succeeded', '--cursor', first.next!]);
    const ticks = [...first.runs, ...second.runs].map((r) => r.tick);
    expect(ticks).toEqual([...ticks].sort((a, b) => b - a));
    expect(new Set(ticks).size).toBe(4);
    for (const run of [...first.runs, ...second.runs]) {
      expect(run).toMatchObject({ status: 'succeeded', host: hostname(), output: { exitCode: 0 } });
      expect(run.id).toBe(`greet/${run.tick}`);
    }

    const failed = json<RunHistoryPage>(['history', 'failing', ...target, '--outcome', 'failed', '--limit', '3']);
    expect(failed.runs.length).toBe(3);
    expect(failed.runs.every((r) => r.status === 'failed' && r.output?.exitCode === 3 && r.output.stdout.includes('disk full'))).toBe(true);
    // Filtered: the newest run of a task that keeps failing may still be running (a retry in progress).
    const text = cli(['history', 'failing', ...target, '--limit', '2', '--outcome', 'failed']);
    expect(text.status).toBe(0);
    const [header, row] = text.stdout.split('\n');
    expect(header).toMatch(/^RUN +TICK +OUTCOME +NODE +TOKEN +LATE +DURATION +ATTEMPTS +ERROR$/);
    expect(row).toContain(`${hostname()}:`);
    expect(row).toContain('exit code 3');
    expect(text.stdout).toMatch(/\nmore: --cursor \S+\n$/);
  });

  it('names the close matches of an unknown task, in one line', () => {
    for (const command of [['history', 'gret'], ['trigger', 'gret'], ['logs', 'gret'], ['pause', 'failng'], ['run', 'gret']]) {
      const result = cli([...command, ...target]);
      expect(result.status).toBe(1);
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines, result.stderr).toHaveLength(1);
      expect(lines[0]).toContain(`task "${command[1]}" is not declared in cluster "ops": did you mean "${command[0] === 'pause' ? 'failing' : 'greet'}"?`);
      expect(lines[0]).toContain('[TASK_NOT_FOUND]');
    }
    expect(cli(['history', 'zzzzzzzz', ...target]).stderr).toContain('its tasks: "failing", "greet"');
  });
});

describe('baton trigger, pause, resume, logs', () => {
  it('trigger then logs --run --follow prints that run once it ended, with its output', () => {
    const triggered = cli(['trigger', 'greet', ...target]);
    expect(triggered.status, triggered.stderr).toBe(0);
    const runId = /run (greet\/\d+-\w+)/.exec(triggered.stdout)?.[1] as string;
    expect(runId, triggered.stdout).toBeDefined();
    const logs = cli(['logs', 'greet', ...target, '--run', runId, '--follow']);
    expect(logs.status, logs.stderr).toBe(0);
    expect(logs.stdout).toMatch(new RegExp(`^=== ${runId} .* succeeded on ${hostname()}:\\d+`));
    expect(logs.stdout).toContain('exit: 0');
    expect(logs.stdout).toMatch(/--- stdout ---\nhello \d{4}-/);
    expect(logs.stdout).toContain('--- stderr ---\na warning');
    // baton run sends its trigger the same way (no cluster node of its own) and waits for the outcome.
    const run = cli(['run', 'greet', ...target, '--wait', '--timeout', '20']);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/greet: succeeded on \S+/);
    expect(run.stdout).toContain('exit: 0');
    const bad = cli(['logs', 'greet', ...target, '--run', 'greet/1']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('[RUN_NOT_FOUND]');
  });

  it('pause records missed ticks until resume; each control is recorded as cli from user@host', async () => {
    const paused = cli(['pause', 'greet', ...target]);
    expect(paused.stdout).toBe('paused greet\n');
    const pausedAt = Date.now();
    const missed = await until('a missed-by-pause record', () => {
      const page = json<RunHistoryPage>(['history', 'greet', ...target, '--outcome', 'missed', '--since', String(pausedAt)]);
      return page.runs.find((r) => r.missed?.reason === 'paused' && r.missed.count >= 2);
    });
    expect(missed.status).toBe('missed');
    expect(cli(['history', 'greet', ...target, '--outcome', 'missed', '--limit', '1']).stdout).toMatch(/missed×\d+ \(paused\)/);
    expect(cli(['resume', 'greet', ...target]).stdout).toBe('resumed greet\n');
    const resumedAt = Date.now();
    await until('a run after resume', () => json<RunHistoryPage>(['history', 'greet', ...target, '--outcome', 'succeeded', '--since', String(resumedAt)]).runs[0]);

    const store = await openStore(storeUrl, { cluster: 'ops' });
    try {
      const actions = (await recentActions(store, 10)).filter((a) => a.task === 'greet' && a.action !== 'trigger');
      expect(actions.map((a) => [a.action, a.by, a.address])).toEqual([
        ['resume', 'cli', `${userInfo().username}@${hostname()}`],
        ['pause', 'cli', `${userInfo().username}@${hostname()}`],
      ]);
    } finally {
      await store.close();
    }
  });

  it('logs --follow prints each run as it ends, until Ctrl-C', async () => {
    const follow = await start(['logs', 'failing', ...target, '--follow'], (line) => line.startsWith('=== failing/'));
    await until('two more runs printed', () => (follow.lines.filter((l) => l.startsWith('=== failing/')).length >= 3 ? true : undefined));
    const exited = new Promise<number | null>((r) => follow.child.once('exit', (code) => r(code)));
    follow.child.kill('SIGINT');
    expect(await exited).toBe(0);
    const ids = follow.lines.filter((l) => l.startsWith('=== ')).map((l) => l.split(' ')[1]);
    expect(new Set(ids).size).toBe(ids.length);
    expect(follow.lines).toContain('disk full');
  });
});

describe('through a served monitor', () => {
  it('history, trigger and logs with --monitor; the monitor records its own actions with its token label', async () => {
    const token = 'console-test-token-0001';
    const serve = await start(['serve', ...target, '--listen', '127.0.0.1:0', '--poll', '200ms', '--token-label', 'ops-team'], (l) => l.startsWith('baton monitor'), { BATON_TOKEN: token });
    const url = /on (http:\/\/\S+\/)/.exec(serve.line)![1]!;
    const env = { BATON_TOKEN: token };
    const page = json<RunHistoryPage>(['history', 'greet', '--monitor', url, '--limit', '3', '--outcome', 'succeeded'], env);
    expect(page.runs).toHaveLength(3);
    expect(page.runs.every((r) => r.task === 'greet' && r.status === 'succeeded')).toBe(true);

    const triggered = cli(['trigger', 'greet', '--monitor', url], env);
    expect(triggered.status, triggered.stderr).toBe(0);
    const runId = /run (greet\/\d+-\w+)/.exec(triggered.stdout)![1]!;
    const logs = cli(['logs', 'greet', '--monitor', url, '--run', runId, '--follow'], env);
    expect(logs.stdout, logs.stderr).toContain('hello ');

    const wrong = cli(['history', 'greet', '--monitor', url], { BATON_TOKEN: 'wrong-token-00000000' });
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain('[MONITOR_REFUSED]');
    expect(cli(['history', 'gret', '--monitor', url], env).stderr).toContain('did you mean "greet"?');

    const recent = await fetch(new URL('api/events/recent?limit=1000', url), { headers: { Authorization: `Bearer ${token}` } });
    const actions = ((await recent.json()) as { events: StampedEvent[] }).events.flatMap((e) => (e.type === 'task:action' ? [e.action] : []));
    expect(actions.find((a) => a.trigger !== undefined && runId.endsWith(a.trigger.replace(/^0+/, ''))), JSON.stringify(actions)).toMatchObject({ action: 'trigger', task: 'greet', by: 'ops-team', address: '127.0.0.1' });
  });
});

export type { HistoryRun };
