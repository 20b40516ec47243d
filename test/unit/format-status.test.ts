import { describe, expect, it } from 'vitest';
import { formatStatus, type FormattableStatus } from '../../src/cli/format-status.js';
import type { Alert } from '../../src/monitor/monitor-events.js';
import type { StatusSnapshot } from '../../src/monitor/status.js';
import type { TaskName, UnitName } from '../../src/scheduler/names.js';

const AT = Date.UTC(2026, 0, 1, 12, 0, 0);

const snapshot: StatusSnapshot = {
  cluster: 'prod',
  store: 'sqlite',
  at: AT,
  nodes: [
    {
      id: 'node-1',
      host: 'web-1',
      pid: 4242,
      version: '0.1.0',
      labels: { zone: 'eu' },
      startedAt: AT - 60_000,
      sessionId: 's1',
      sessionAgeMs: 60_000,
      expiresInMs: 9_500,
      lastRenewalAt: AT - 500,
      owns: ['sync'],
    },
  ],
  tasks: [
    {
      unit: 'sync' as UnitName,
      task: 'sync' as TaskName,
      mode: 'singleton',
      schedules: ['every 10s'],
      conflict: false,
      owner: { node: 'node-1', host: 'web-1', pid: 4242, token: '7', since: AT - 50_000 },
      lastRun: { task: 'sync' as TaskName, unit: 'sync' as UnitName, tick: AT - 10_000, status: 'succeeded', node: 'node-1', durationMs: 1_250, lateMs: 35 },
      nextTick: AT + 10_000,
      declaredBy: 1,
      paused: false,
    },
    {
      unit: 'report' as UnitName,
      task: 'report' as TaskName,
      mode: 'singleton',
      schedules: ['0 * * * *'],
      conflict: false,
      owner: null,
      lastRun: { task: 'report' as TaskName, unit: 'report' as UnitName, tick: AT - 3_600_000, status: 'running', node: 'node-1' },
      nextTick: AT + 3_600_000,
      declaredBy: 1,
      paused: false,
    },
  ],
  locks: [],
  monitors: [],
};

const alerts: Alert[] = [
  { id: 'no-owner:report', rule: 'no-owner', subject: 'report', message: 'task "report" has no owner', since: AT - 30_000 },
  { id: 'node-flapping:node-1', rule: 'node-flapping', subject: 'node-1', message: 'node-1 rejoined 4 times', since: AT - 5_000 },
];

/** The cells of the table row that starts with `first`. */
function row(text: string, first: string): string[] {
  const line = text.split('\n').find((l) => l.trim().startsWith(`${first} `));
  if (!line) throw new Error(`no row for ${first} in:\n${text}`);
  return line.trim().split(/\s{2,}/);
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[/;

describe('formatStatus', () => {
  it('plain output: the last run duration and lateness, no ANSI codes', () => {
    const text = formatStatus(snapshot, { color: false });
    expect(text).not.toMatch(ANSI);
    expect(text).toContain('cluster prod · sqlite · 1 node(s) · 2 task(s) · at 2026-01-01 12:00:00 UTC');
    expect(text).toMatch(/TASK\s+MODE\s+SCHEDULE\s+OWNER\s+TOKEN\s+LAST RUN\s+OUTCOME\s+DURATION\s+LATE\s+NEXT TICK$/m);
    expect(row(text, 'sync')).toEqual([
      'sync', 'singleton', 'every 10s', 'node-1 web-1:4242', '7', '2026-01-01 11:59:50 on node-1', 'succeeded', '1.25s', '35ms', '2026-01-01 12:00:10',
    ]);
    // A run still going has neither: dashes, not "undefined".
    expect(row(text, 'report').slice(6, 9)).toEqual(['running', '-', '-']);
    expect(text).not.toContain('undefined');
    // No alerts array (a store snapshot): no ALERTS column or section.
    expect(text).not.toContain('ALERTS');
  });

  it('plain output with a monitor snapshot: active alerts per task and node, and listed with their message', () => {
    const status: FormattableStatus = { ...snapshot, alerts };
    const text = formatStatus(status, { color: false });
    expect(text).not.toMatch(ANSI);
    expect(text).toContain('· 2 alert(s) ·');
    expect(text).toMatch(/NEXT TICK\s+ALERTS$/m);
    expect(row(text, 'report').at(-1)).toBe('no-owner');
    expect(row(text, 'sync').at(-1)).toBe('-');
    expect(row(text, 'node-1').at(-1)).toBe('node-flapping');
    expect(text).toMatch(/^\s+RULE\s+SUBJECT\s+SINCE\s+MESSAGE$/m);
    expect(row(text, 'no-owner')).toEqual(['no-owner', 'report', '2026-01-01 11:59:30', 'task "report" has no owner']);
  });

  it('an empty alerts array: the column is there, all dashes, no section', () => {
    const text = formatStatus({ ...snapshot, alerts: [] }, { color: false });
    expect(text).toContain('· 0 alerts ·');
    expect(row(text, 'sync').at(-1)).toBe('-');
    expect(text).not.toMatch(/^\s+RULE\s+SUBJECT/m);
  });

  it('colour output paints and still aligns the columns', () => {
    const text = formatStatus({ ...snapshot, alerts }, { color: true });
    expect(text).toMatch(ANSI);
    expect(text).toContain('\x1b[32msucceeded\x1b[0m');
    // eslint-disable-next-line no-control-regex
    expect(text.replace(/\x1b\[\d+m/g, '')).toBe(formatStatus({ ...snapshot, alerts }, { color: false }));
  });
});
