/**
 * What the operator commands print (src/cli/console.ts): the close matches named for a mistyped task,
 * the history table's columns, and a run's log with its output tails (and how much of them was cut).
 */
import { describe, expect, it } from 'vitest';
import { closeMatches, formatHistory, formatRunLog, unknownTaskError } from '../../src/cli/console.js';
import type { HistoryRun } from '../../src/monitor/run-history.js';
import type { TaskName, UnitName } from '../../src/scheduler/names.js';

const TASKS = ['backup', 'billing-sync', 'cleanup', 'report', 'report-daily', 'sync-orders'];
const base = { task: 'backup' as TaskName, unit: 'backup' as UnitName };

describe('closeMatches', () => {
  it('names typos and partial names, closest first, and nothing for an unrelated name', () => {
    expect(closeMatches('bakup', TASKS)).toEqual(['backup']);
    expect(closeMatches('reprot', TASKS)[0]).toBe('report');
    expect(closeMatches('sync', TASKS)).toEqual(['sync-orders', 'billing-sync']);
    expect(closeMatches('zzzzzzzz', TASKS)).toEqual([]);
  });

  it('falls back to the known tasks, and says when the cluster declares none', () => {
    expect(unknownTaskError('zzzzzzzz', 'ops', TASKS).message).toBe(`task "zzzzzzzz" is not declared in cluster "ops": its tasks: ${TASKS.map((t) => `"${t}"`).join(', ')}`);
    expect(unknownTaskError('x', 'ops', []).message).toBe('task "x" is not declared in cluster "ops": it declares no task');
    expect(unknownTaskError('bakup', 'ops', TASKS).code).toBe('TASK_NOT_FOUND');
  });
});

describe('formatHistory and formatRunLog', () => {
  const ended: HistoryRun = {
    ...base,
    id: 'backup/1796658950000',
    tick: 1_796_658_950_000,
    status: 'failed',
    node: 'node-a',
    host: 'db-1',
    pid: 4242,
    token: '7',
    lateMs: 3,
    durationMs: 41_200,
    attempts: 3,
    error: 'CommandFailedError: task "backup": command exit code 3\nsecond line',
    output: { exitCode: 3, signal: null, stdout: 'tail of stdout\n', stderr: 'disk full\n', stdoutBytes: 100_000, stderrBytes: 10 },
  };
  const missed: HistoryRun = { ...base, id: 'backup/1796658940000', tick: 1_796_658_940_000, status: 'missed', missed: { from: 1_796_658_900_000, count: 5, reason: 'paused' } };

  it('prints one aligned line per run with node host:pid, token, lateness, duration, attempts and the first line of the error', () => {
    const [header, first, second] = formatHistory([ended, missed]).split('\n');
    expect(header).toMatch(/^RUN +TICK +OUTCOME +NODE +TOKEN +LATE +DURATION +ATTEMPTS +ERROR$/);
    expect(first).toMatch(/^backup\/1796658950000 +2026-12-07T15:55:50Z +failed +db-1:4242 +7 +3ms +41\.2s +3 +CommandFailedError: task "backup": command exit code 3$/);
    expect(second).toMatch(/^backup\/1796658940000 +2026-12-07T15:55:40Z +missed×5 \(paused\) +- +- +- +- +-$/);
  });

  it("prints a run's exit and output tails, saying how much of a stream was cut", () => {
    const log = formatRunLog(ended);
    expect(log).toContain('=== backup/1796658950000  2026-12-07T15:55:50Z  failed on db-1:4242 in 41.2s  token 7\nexit: 3\n');
    expect(log).toContain('--- stdout (last 15 of 100000 bytes) ---\ntail of stdout\n--- stderr ---\ndisk full\n');
    expect(formatRunLog(missed)).toContain('missed 5 tick(s) from 2026-12-07T15:55:00Z: paused');
  });
});
