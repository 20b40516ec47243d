/** `baton status` shows the exit status and last output line of an agent command's last run. */
import { describe, expect, it } from 'vitest';
import { formatStatus } from '../../src/cli/format-status.js';
import type { StatusSnapshot } from '../../src/monitor/status.js';
import type { TaskName, UnitName } from '../../src/scheduler/names.js';

const AT = Date.UTC(2026, 0, 1, 12, 0, 0);

const task = (name: string, output?: { exitCode: number | null; signal: string | null; stdout: string; stderr: string }) => ({
  unit: name as UnitName,
  task: name as TaskName,
  mode: 'singleton',
  schedules: ['every 10s'],
  conflict: false,
  owner: null,
  lastRun: { task: name as TaskName, unit: name as UnitName, tick: AT - 10_000, status: output?.exitCode === 0 ? ('succeeded' as const) : ('failed' as const), ...(output ? { output: { ...output, stdoutBytes: output.stdout.length, stderrBytes: output.stderr.length } } : {}) },
  nextTick: AT + 10_000,
  declaredBy: 1,
  paused: false,
});

describe('status of agent commands', () => {
  it('lists the last output of tasks that recorded one, and nothing for the others', () => {
    const status: StatusSnapshot = {
      cluster: 'ops',
      store: 'sqlite',
      at: AT,
      nodes: [],
      locks: [],
      monitors: [],
      tasks: [
        task('backup', { exitCode: 0, signal: null, stdout: 'dumping\n12 tables done\n', stderr: '' }),
        task('sync', { exitCode: 3, signal: null, stdout: '', stderr: 'connection refused\n' }),
        task('slow', { exitCode: null, signal: 'SIGTERM', stdout: '', stderr: '' }),
        task('plain'),
      ],
    };
    const text = formatStatus(status, { color: false });
    const section = text.slice(text.indexOf('LAST OUTPUT'));
    expect(section).toMatch(/backup\s+0\s+12 tables done\s+-/);
    expect(section).toMatch(/sync\s+3\s+-\s+connection refused/);
    expect(section).toMatch(/slow\s+SIGTERM/);
    expect(section).not.toContain('plain');
    expect(formatStatus({ ...status, tasks: [task('plain')] }, { color: false })).not.toContain('LAST OUTPUT');
  });
});
