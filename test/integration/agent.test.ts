/**
 * `baton agent` as real processes (`node --import tsx src/cli/main.ts agent --config …`), three agents on
 * SQLite and on PostgreSQL, one scenario each:
 * - a shell task every 1 s writes its tick to a file: each tick once across the agents;
 * - SIGHUP with a config adding a task: the unchanged task keeps its owner and lease token, the added one
 *   runs; a SIGHUP with a broken config is refused with the field's path and the agent keeps running;
 * - a task whose command outlives its `timeout`: the run is `timed-out` and its whole process group
 *   (the shell and a background grandchild) is gone;
 * - kill -9 of the agent owning a long command: the command's group is gone within a bounded time (the
 *   watchdog sees its control pipe close), another agent takes the task over and starts it again.
 * - `baton run tick --wait`: triggered cluster-wide, run once by the owner, its outcome printed.
 * And a bad config at start: exit code 1 and the field's path. Conditions are awaited with generous
 * deadlines, never fixed sleeps that a loaded machine could outrun.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { UnitName } from '../../src/scheduler/names.js';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { randomId } from '../../src/core/ids.js';
import { readStatus } from '../../src/monitor/status.js';
import { runPrefix } from '../../src/scheduler/keys.js';
import type { RunRecord } from '../../src/scheduler/task.js';
import { openStore } from '../../src/stores/open-store.js';
import type { Store } from '../../src/stores/contract.js';
import { SERVER_BACKENDS } from '../helpers/backends.js';
import { dropPostgresClusters } from '../helpers/postgres.js';

const root = mkdtempSync(join(tmpdir(), 'baton-agent-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const postgres = SERVER_BACKENDS.find((b) => b.kind === 'postgres')!;
const TARGETS = [
  { kind: 'sqlite', url: (dir: string) => `sqlite:${join(dir, 'baton.db')}` },
  { kind: 'postgres', url: () => postgres.url('127.0.0.1', postgres.port) },
];

interface Agent {
  readonly id: string;
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(50);
  }
}

/** The process exists (running or a zombie): kill(pid, 0) does not throw ESRCH. */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    return false;
  }
}

/** Running: exists and is not a zombie waiting for its reaper. */
function running(pid: number): boolean {
  if (!exists(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const pidsIn = (file: string) => readFileSync(file, 'utf8').trim().split(/\s+/).map(Number);

const MONITOR_TOKEN = 'agent-test-token-0123456789';

function config(dir: string, store: string, cluster: string, id: string, extraTasks = ''): string {
  // a1 also serves the monitor (API, dashboard) from the agent config.
  const monitor = id === 'a1' ? `monitor: { listen: "127.0.0.1:0", token: "${MONITOR_TOKEN}" }\n` : '';
  return `# agent ${id}
${monitor}store: "${store}"
cluster: ${cluster}
node: { id: ${id} }
ttl: 2s
killGrace: 1s
tasks:
  tick:
    description: one line per tick
    every: 1s
    command: echo "$BATON_TICK $BATON_NODE $BATON_FENCING_TOKEN" >> ${dir}/ticks.log
  long:
    description: runs until stopped; leaves its pids
    every: 1s
    command: sleep 300 & echo $$ $! > ${dir}/long.$BATON_NODE.pids; wait
  slow:
    every: 2s
    timeout: 1s
    command: sleep 300 & echo $$ $! > ${dir}/slow.$(date +%s%N).pids; sleep 300
${extraTasks}`;
}

function startAgent(dir: string, id: string): Agent {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'agent', '--config', join(dir, `${id}.yaml`)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // The default log level (info): the agent's hand-overs and command exits are logged.
    env: Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'BATON_LOG_LEVEL')),
  });
  const agent: Agent = { id, child, stdout: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (agent.stdout += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (agent.stderr += text));
  return agent;
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => child.once('exit', () => resolve()));

/** Keys that appear twice in one object of a JSON text: JSON.parse would silently keep the last. */
function duplicateKeys(text: string): string[] {
  const duplicates: string[] = [];
  const objects: Set<string>[] = [];
  for (const [token, colon] of text.matchAll(/"(?:[^"\\]|\\.)*"(\s*:)?|[{}]/g)) {
    if (token === '{') objects.push(new Set());
    else if (token === '}') objects.pop();
    else if (colon) {
      const key = JSON.parse(token.slice(0, token.length - colon.length)) as string;
      const seen = objects.at(-1) as Set<string>;
      if (seen.has(key)) duplicates.push(key);
      seen.add(key);
    }
  }
  return duplicates;
}

async function records(store: Store, task: string): Promise<RunRecord[]> {
  return (await store.list<RunRecord>(runPrefix(task as UnitName))).map((r) => r.value);
}

describe.each(TARGETS)('baton agent, 3 processes on $kind', ({ kind, url }) => {
  it('runs each tick once, reloads on SIGHUP keeping ownership, kills timed-out and orphaned command groups', async () => {
    const dir = mkdtempSync(join(root, `${kind}-`));
    const storeUrl = url(dir);
    const cluster = `agent-${randomId(4)}`;
    const ids = ['a1', 'a2', 'a3'];
    for (const id of ids) writeFileSync(join(dir, `${id}.yaml`), config(dir, storeUrl, cluster, id));
    const agents = ids.map((id) => startAgent(dir, id));
    const store = await openStore(storeUrl, { cluster });
    try {
      await waitFor('3 agents started', () => agents.every((a) => a.stdout.includes('baton agent: node')));
      // Past rebalanceAfter (= ttl, 2 s): placement has settled.
      await waitFor('ticks written', () => existsSync(join(dir, 'ticks.log')) && readFileSync(join(dir, 'ticks.log'), 'utf8').split('\n').length > 4);

      // The log: JSON lines whose keys are unique (of two "pid"s a parser keeps one).
      await waitFor('a command logged', () => agents.some((a) => a.stderr.includes('"msg":"command finished"')));
      const logLines = agents.flatMap((a) => a.stderr.split('\n')).filter((line) => line.startsWith('{'));
      for (const line of logLines) expect(duplicateKeys(line), line).toEqual([]);
      expect(logLines.find((line) => line.includes('"msg":"command finished"'))).toMatch(/"commandPid":\d+/);

      // The monitor of a1 serves the run history, outputs included.
      const monitorUrl = /monitor (http:\/\/[^ \n]+)/.exec(agents[0]!.stdout)?.[1];
      expect(monitorUrl).toBeTruthy();
      const api = await fetch(`${monitorUrl}api/runs?task=tick&limit=5`, { headers: { authorization: `Bearer ${MONITOR_TOKEN}` } });
      expect(api.status).toBe(200);
      const { runs } = (await api.json()) as { runs: RunRecord[] };
      // (The tick command writes to a file, not to stdout.)
      expect(runs.find((r) => r.status === 'succeeded')?.output).toMatchObject({ exitCode: 0, signal: null, stdout: '', stderr: '' });

      // --- SIGHUP: add a task on every agent; the unchanged "tick" keeps its owner and token. ---
      await sleep(2500);
      const tickOwner = (await readStatus(store)).tasks.find((t) => t.unit === 'tick')?.owner;
      expect(tickOwner).toBeTruthy();
      const added = `  added:\n    mode: mutex\n    every: 1s\n    command: echo "$BATON_TICK" >> ${dir}/added.log\n`;
      for (const agent of agents) {
        writeFileSync(join(dir, `${agent.id}.yaml`), config(dir, storeUrl, cluster, agent.id, added));
        agent.child.kill('SIGHUP');
      }
      await waitFor('3 reloads', () => agents.every((a) => a.stdout.includes('reloaded') && a.stdout.includes('added: added;')));
      await waitFor('the added task ran twice', () => existsSync(join(dir, 'added.log')) && readFileSync(join(dir, 'added.log'), 'utf8').trim().split('\n').length >= 2);
      const statusAfter = await readStatus(store);
      // Every agent's published task list shows the added task (Store.updateSessionInfo).
      expect(statusAfter.tasks.find((t) => t.unit === 'added')?.declaredBy).toBe(3);
      const afterReload = statusAfter.tasks.find((t) => t.unit === 'tick')?.owner;
      expect(afterReload?.node).toBe(tickOwner?.node);
      expect(afterReload?.token).toBe(tickOwner?.token);

      // A broken config on SIGHUP: refused with the field's path; the agent keeps running its config.
      const a1 = agents[0]!;
      writeFileSync(join(dir, 'a1.yaml'), config(dir, storeUrl, cluster, 'a1', added).replace('timeout: 1s', 'timeout: soon'));
      a1.child.kill('SIGHUP');
      await waitFor('the reload error', () => a1.stderr.includes('reload failed'));
      expect(a1.stderr).toContain(`${join(dir, 'a1.yaml')}: tasks.slow.timeout: expected a duration`);
      expect(a1.child.exitCode).toBeNull();
      writeFileSync(join(dir, 'a1.yaml'), config(dir, storeUrl, cluster, 'a1', added));

      // --- timeout: the run is timed-out and its whole group (shell + background sleep) is gone. ---
      const timedOut = await waitFor('a timed-out run of slow', async () => (await records(store, 'slow')).find((r) => r.status === 'timed-out'));
      expect(timedOut.output?.signal).toBe('SIGTERM');
      // The oldest run's file (names carry the start time in ns): complete, its run timed out long ago.
      const firstSlow = await waitFor('the first slow run\'s pids', () => {
        const [oldest] = readdirSync(dir).filter((f) => f.startsWith('slow.')).sort();
        const pids = oldest ? pidsIn(join(dir, oldest)) : [];
        return pids.length === 2 && pids;
      });
      // The first run has ended (timed out): neither its shell nor its grandchild runs.
      for (const pid of firstSlow) await waitFor(`slow pid ${pid} gone`, () => !exists(pid), 15_000);

      // --- kill -9 of the agent running "long": its command's group dies, another agent takes over. ---
      const longOwner = await waitFor('an owner of long', async () => (await readStatus(store)).tasks.find((t) => t.unit === 'long')?.owner ?? undefined);
      const victim = agents.find((a) => a.id === longOwner.node)!;
      const longFile = join(dir, `long.${victim.id}.pids`);
      const longPids = await waitFor('long pids', () => existsSync(longFile) && pidsIn(longFile).length === 2 && pidsIn(longFile));
      expect(longPids.every(running)).toBe(true);
      const killedAt = Date.now();
      victim.child.kill('SIGKILL');
      await exited(victim.child);
      // Measured side by side: the group's death, its reaping, and the takeover by another agent.
      let overlapped: number[] = [];
      const since = () => Date.now() - killedAt;
      const [killedAfterMs, reapedAfterMs, [successor, takeoverAfterMs]] = await Promise.all([
        waitFor('the orphaned group killed', () => !longPids.some(running) && Math.max(1, since()), 10_000),
        waitFor('the orphaned group reaped (ESRCH)', () => !longPids.some(exists) && Math.max(1, since()), 15_000),
        waitFor('another agent running long', () => {
          const next = agents.find((a) => a !== victim && existsSync(join(dir, `long.${a.id}.pids`)));
          // The moment the next owner's command has started: nothing of the dead owner's may still run.
          if (next) overlapped = longPids.filter(running);
          return next ? ([next, since()] as const) : undefined;
        }),
      ]);
      process.stdout.write(`[${kind}] after kill -9: group killed in ${killedAfterMs} ms, reaped in ${reapedAfterMs} ms; ${successor.id} runs long after ${takeoverAfterMs} ms\n`);
      expect(killedAfterMs).toBeLessThan(10_000);
      expect(overlapped).toEqual([]);
      // The dead owner's run is marked interrupted by the new owner.
      await waitFor('the interrupted run marked', async () => (await records(store, 'long')).some((r) => r.node === victim.id && r.status === 'aborted'));

      // baton run: a cluster-wide trigger, run by the owner; --wait prints the outcome and the output.
      const run = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'run', 'tick', '--store', storeUrl, '--cluster', cluster, '--wait', '--timeout', '30'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let runOut = '';
      run.stdout!.setEncoding('utf8').on('data', (text: string) => (runOut += text));
      run.stderr!.resume();
      await exited(run);
      expect(run.exitCode).toBe(0);
      expect(runOut).toMatch(/tick: succeeded on a\d/);
      expect(runOut).toContain('exit: 0');
      expect((await records(store, 'tick')).some((r) => r.trigger === true && r.status === 'succeeded')).toBe(true);

      // Graceful stop of the others: their commands go with them.
      const successorPids = pidsIn(join(dir, `long.${successor.id}.pids`));
      for (const agent of agents) if (agent !== victim) agent.child.kill('SIGTERM');
      await Promise.all(agents.map((a) => exited(a.child)));
      for (const agent of agents) if (agent !== victim) expect(agent.child.exitCode).toBe(0);
      await waitFor('the successor group gone after SIGTERM', () => !successorPids.some(running), 10_000);

      // Each tick once: no tick line twice, and the run records agree.
      const lines = readFileSync(join(dir, 'ticks.log'), 'utf8').trim().split('\n');
      const ticks = lines.map((l) => l.split(' ')[0]);
      expect(ticks.length).toBeGreaterThan(8);
      expect(ticks.length - new Set(ticks).size).toBe(0);
      const tickRuns = (await records(store, 'tick')).filter((r) => r.status === 'succeeded');
      // Lines of runs cut short (the killed owner's, the stopped agents') have no succeeded record.
      expect(tickRuns.length).toBeGreaterThanOrEqual(ticks.length - 3);
      expect(tickRuns.every((r) => r.output?.exitCode === 0)).toBe(true);
      const addedTicks = readFileSync(join(dir, 'added.log'), 'utf8').trim().split('\n');
      expect(addedTicks.length - new Set(addedTicks).size).toBe(0);
    } finally {
      for (const agent of agents) if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill('SIGKILL');
      await Promise.all(agents.map((a) => exited(a.child)));
      await store.close();
      if (kind === 'postgres') await dropPostgresClusters(storeUrl, [cluster]);
    }
  }, 90_000);
});

describe('baton agent --check', () => {
  it('accepts the example config and prints the next runs of each task', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'agent', '--config', 'examples/agent/baton.yaml', '--check', '--next', '2'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, BATON_STORE_URL: 'postgres://baton:secret@db.internal/ops', BATON_TOKEN: '0123456789abcdef0123', BATON_WEBHOOK_URL: 'https://hooks.example/x' },
    });
    let stdout = '';
    child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    await exited(child);
    expect(child.exitCode).toBe(0);
    expect(stdout).toContain('examples/agent/baton.yaml: valid; cluster "ops"');
    // The store's password is never printed.
    expect(stdout).not.toContain('secret');
    expect(stdout).toMatch(/backup {2}mode singleton {2}cron 0 3 \* \* \* tz Europe\/Paris/);
    // 03:00 in Paris: 02:00Z in winter, 01:00Z in summer.
    expect(stdout).toMatch(/next: \d{4}-\d\d-\d\dT0[12]:00:00\.000Z, /);
  }, 30_000);
});

describe('baton agent with a bad config', () => {
  it('exits 1 naming the file and the field, at start and with --check', async () => {
    const dir = mkdtempSync(join(root, 'bad-'));
    const file = join(dir, 'baton.yaml');
    writeFileSync(file, 'store: "sqlite:x.db"\ntasks:\n  backup:\n    every: 1m\n    command: ./backup.sh\n    retries: many\n');
    for (const args of [['agent', '--config', file], ['agent', '--config', file, '--check']]) {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
      await exited(child);
      expect(child.exitCode).toBe(1);
      expect(stderr).toContain(`${file}: tasks.backup.retries: `);
      expect(stderr).toContain('[CONFIG_INVALID]');
    }
  }, 30_000);
});
