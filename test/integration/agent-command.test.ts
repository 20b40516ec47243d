/**
 * A command run by the agent, with real processes: exit status and output tails, and the process group
 * stopped whole (grandchildren included) on abort, on the command's own exit, and after SIGTERM is ignored.
 */
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/core/clock.js';
import { runCommand, type CommandSpec } from '../../src/agent/command.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-cmd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sh = (script: string, extra: Partial<CommandSpec> = {}) =>
  runCommand({ command: { shell: '/bin/sh', script }, env: process.env, killGraceMs: 2000, title: 'test', signal: new AbortController().signal, clock: systemClock, ...extra });

/** kill(pid, 0) succeeds: the process exists (running, or a zombie not reaped yet). */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    expect((error as NodeJS.ErrnoException).code).toBe('ESRCH');
    return false;
  }
}

/** Exists and is not a zombie (a zombie is dead; only its reaper — PID 1 here, a slow one — removes it). */
function isAlive(pid: number): boolean {
  if (!exists(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Dead at once, and gone (kill(pid, 0) → ESRCH) once reaped, within a generous bound. */
async function expectGone(pid: number): Promise<void> {
  expect(isAlive(pid)).toBe(false);
  await waitFor(`pid ${pid} reaped`, () => !exists(pid));
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const readPids = (file: string) => readFileSync(file, 'utf8').trim().split(/\s+/).map(Number);

describe('runCommand', () => {
  it('reports exit code, output tails and pid', async () => {
    const result = await sh('echo out; echo err >&2; exit 3');
    expect(result.exitCode).toBe(3);
    expect(result.signal).toBeNull();
    expect(result.stdout.text()).toBe('out\n');
    expect(result.stderr.text()).toBe('err\n');
    expect(result.pid).toBeGreaterThan(0);
  });

  it('runs an argv without a shell, with env and cwd', async () => {
    const result = await runCommand({
      command: { argv: ['/bin/sh', '-c', 'echo "$GREETING $(pwd)"'] },
      env: { ...process.env, GREETING: 'hi' },
      cwd: dir,
      killGraceMs: 1000,
      title: 'test',
      signal: new AbortController().signal,
      clock: systemClock,
    });
    expect(result.stdout.text().trim()).toBe(`hi ${dir}`);
  });

  it('keeps only the last bytes of a large output', async () => {
    const result = await sh('i=0; while [ $i -lt 3000 ]; do echo "line $i ................................................"; i=$((i+1)); done', { tailBytes: 1024 });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.totalBytes).toBeGreaterThan(100_000);
    expect(Buffer.byteLength(result.stdout.text())).toBeLessThanOrEqual(1024);
    expect(result.stdout.text().trimEnd().endsWith('line 2999 ................................................')).toBe(true);
  });

  it('reports a command that cannot start', async () => {
    const result = await runCommand({ command: { argv: ['/no/such/binary'] }, env: process.env, killGraceMs: 1000, title: 't', signal: new AbortController().signal, clock: systemClock });
    expect(result.exitCode).toBeNull();
    expect(result.spawnError).toMatch(/ENOENT/);
  });

  it('on abort, stops the whole group: the command and its background grandchild', async () => {
    const pids = join(dir, 'abort.pids');
    const controller = new AbortController();
    const running = sh(`sleep 100 & echo $$ $! > ${pids}; sleep 100`, { signal: controller.signal });
    await waitFor('the pid file', () => existsSync(pids) && readPids(pids).length === 2);
    const [shell, grandchild] = readPids(pids) as [number, number];
    expect(isAlive(shell) && isAlive(grandchild)).toBe(true);
    controller.abort(new Error('timeout'));
    const result = await running;
    expect(result.signal).toBe('SIGTERM');
    await expectGone(shell);
    await expectGone(grandchild);
  });

  it('SIGKILLs a group that ignores SIGTERM after the grace', async () => {
    const pids = join(dir, 'stubborn.pids');
    const controller = new AbortController();
    const running = sh(`trap '' TERM; echo $$ > ${pids}; while true; do sleep 0.1; done`, { signal: controller.signal, killGraceMs: 500 });
    await waitFor('the pid file', () => existsSync(pids) && readPids(pids).length === 1);
    const started = Date.now();
    controller.abort(new Error('stop'));
    const result = await running;
    expect(result.signal).toBe('SIGKILL');
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    await expectGone(readPids(pids)[0]!);
  });

  it('SIGKILLs at once, without the grace, when the abort says so (ownership lost)', async () => {
    const pids = join(dir, 'lost.pids');
    const controller = new AbortController();
    const running = sh(`trap '' TERM; echo $$ > ${pids}; while true; do sleep 0.1; done`, {
      signal: controller.signal,
      killGraceMs: 30_000,
      killAtOnce: (reason) => reason instanceof Error && reason.message === 'lease lost',
    });
    await waitFor('the pid file', () => existsSync(pids) && readPids(pids).length === 1);
    const started = Date.now();
    controller.abort(new Error('lease lost'));
    const result = await running;
    expect(result.signal).toBe('SIGKILL');
    expect(Date.now() - started).toBeLessThan(5000);
    expect(isAlive(readPids(pids)[0]!)).toBe(false);
  });

  it('SIGKILLs the group when this process stays silent past silenceMs (stopped, event loop blocked)', async () => {
    const pids = join(dir, 'silent.pids');
    const running = sh(`echo $$ > ${pids}; sleep 100`, { silenceMs: 400 });
    await waitFor('the pid file', () => existsSync(pids) && readPids(pids).length === 1);
    // Block this event loop well past the silence window: no ping can leave.
    const until = Date.now() + 1500;
    while (Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    const result = await running;
    expect(result.signal).toBe('SIGKILL');
  });

  it('keeps a command running while pings flow', async () => {
    const result = await sh('sleep 1; echo done', { silenceMs: 300 });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.text()).toBe('done\n');
  });

  it('names a missing cwd', async () => {
    const result = await sh('true', { cwd: join(dir, 'nowhere') });
    expect(result.spawnError).toContain('nowhere');
    expect(result.spawnError).toContain('does not exist');
  });

  it('ends the run with its group: what the command left in the background is stopped', async () => {
    const pids = join(dir, 'left.pids');
    const result = await sh(`sleep 100 & echo $! > ${pids}; exit 0`);
    expect(result.exitCode).toBe(0);
    await expectGone(readPids(pids)[0]!);
  });
});
