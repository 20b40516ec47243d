/** Renders a status snapshot as a readable table; colours only when writing to a terminal. */
import { formatDuration } from '../core/duration.js';
import type { Alert } from '../monitor/monitor-events.js';
import type { RelayView } from '../monitor/relay-watch.js';
import type { StatusSnapshot } from '../monitor/status.js';
import type { RunRecord } from '../scheduler/task.js';

/** Modes whose tasks have no owner between ticks (the next tick is competed for). */
const TURN_MODES = new Set(['mutex', 'round-robin']);

/**
 * A snapshot from the store (`readStatus`) or from a monitor (`MonitorStatus`, which adds `alerts`).
 * The ALERTS columns and section show only when `alerts` is there; RELAYS when relays are watched.
 */
export type FormattableStatus = StatusSnapshot & { readonly alerts?: readonly Alert[]; readonly relays?: readonly RelayView[] };

export function formatStatus(status: FormattableStatus, options: { color: boolean }): string {
  const paint = (code: number, text: string) => (options.color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const time = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '-');
  const alerts = Array.isArray(status.alerts) ? status.alerts : undefined;
  const alertsOf = (subject: string) => {
    const rules = (alerts ?? []).filter((a) => a.subject === subject).map((a) => a.rule);
    return rules.length > 0 ? paint(31, rules.join(',')) : '-';
  };
  const lines: string[] = [];
  lines.push(
    `cluster ${paint(1, status.cluster)} · ${status.store} · ${status.nodes.length} node(s) · ${status.tasks.length} task(s)` +
      `${alerts ? ` · ${alerts.length > 0 ? paint(31, `${alerts.length} alert(s)`) : '0 alerts'}` : ''} · at ${time(status.at)} UTC`,
  );
  lines.push('', paint(1, 'NODES'));
  lines.push(
    ...table(
      ['ID', 'HOST:PID', 'VERSION', 'UP', 'EXPIRES IN', 'OWNS', 'LABELS', ...(alerts ? ['ALERTS'] : [])],
      status.nodes.map((n) => [
        n.id,
        `${n.host}:${n.pid}`,
        n.version,
        formatDuration(n.sessionAgeMs),
        formatDuration(n.expiresInMs),
        String(n.owns.length),
        Object.entries(n.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(',') || '-',
        ...(alerts ? [alertsOf(n.id)] : []),
      ]),
    ),
  );
  lines.push('', paint(1, 'TASKS'));
  lines.push(
    ...table(
      ['TASK', 'MODE', 'SCHEDULE', 'OWNER', 'TOKEN', 'LAST RUN', 'OUTCOME', 'DURATION', 'LATE', 'NEXT TICK', ...(alerts ? ['ALERTS'] : [])],
      status.tasks.map((t) => {
        const run = t.lastRun;
        const colour = run?.status === 'succeeded' ? 32 : run?.status === 'failed' || run?.status === 'missed' ? 31 : 33;
        return [
          t.paused ? `${t.unit} ${paint(33, '(paused)')}` : t.unit,
          t.conflict ? `${t.mode} ${paint(31, '(conflict)')}` : t.mode,
          t.schedules.join(' | ') || '(not declared)',
          t.owner ? `${t.owner.node} ${t.owner.host}:${t.owner.pid}` : TURN_MODES.has(t.mode) ? '(between ticks)' : paint(31, '(none)'),
          t.owner?.token ?? '-',
          run ? `${time(run.tick)}${run.node ? ` on ${run.node}` : ''}` : '-',
          run ? paint(colour, run.status) : '-',
          run?.durationMs !== undefined ? formatDuration(run.durationMs) : '-',
          run?.lateMs !== undefined ? formatDuration(run.lateMs) : '-',
          time(t.nextTick),
          ...(alerts ? [alertsOf(t.unit)] : []),
        ];
      }),
    ),
  );
  // Commands run by `baton agent` record their exit status and output tail: one line per task here
  // (the whole tail: `baton status --json`, /api/runs, the dashboard).
  const withOutput = status.tasks.filter((t) => t.lastRun?.output);
  if (withOutput.length > 0) {
    const lastLine = (text: string) => text.trimEnd().split('\n').pop()?.slice(0, 120) ?? '';
    lines.push('', paint(1, 'LAST OUTPUT'));
    lines.push(
      ...table(
        ['TASK', 'EXIT', 'STDOUT (last line)', 'STDERR (last line)'],
        withOutput.map((t) => {
          const output = t.lastRun?.output as NonNullable<RunRecord['output']>;
          const exit = output.signal ?? String(output.exitCode);
          return [t.unit, exit === '0' ? paint(32, exit) : paint(31, exit), lastLine(output.stdout) || '-', lastLine(output.stderr) || '-'];
        }),
      ),
    );
  }
  if (status.locks.length > 0) {
    lines.push('', paint(1, 'LOCKS'));
    lines.push(
      ...table(
        ['NAMESPACE', 'LOCK', 'HOLDER', 'TOKEN', 'SINCE'],
        status.locks.map((l) => [l.namespace, l.name, l.node ? `${l.node.id} ${l.node.host}:${l.node.pid}` : paint(33, '(session ending)'), l.token, time(l.since)]),
      ),
    );
  }
  if (status.monitors.length > 0) {
    lines.push('', `${paint(1, 'MONITORS')} ${status.monitors.map((m) => `${m.host}:${m.pid}`).join(', ')}`);
  }
  if (status.relays && status.relays.length > 0) {
    const count = (n: number | null) => (n === null ? paint(31, '?') : String(n));
    lines.push('', paint(1, 'RELAYS'));
    lines.push(
      ...table(
        ['RELAY/NODE', 'LEVEL', 'OUTBOX', 'OLDEST UNPUBLISHED', 'HELD', 'PARKED', 'QUEUED', 'DEAD LETTERS', 'ERROR'],
        status.relays.flatMap((v) =>
          v.nodes.map((n, i) => [
            `${v.relay}/${n.node}`,
            n.level,
            count(n.outboxDepth),
            n.outboxLagMs === null ? paint(31, '?') : n.outboxLagMs === 0 ? '-' : formatDuration(n.outboxLagMs),
            count(n.heldDepth),
            count(n.parkedDepth),
            count(n.queueDepth),
            i === 0 ? count(v.deadLetterDepth) : '',
            paint(31, n.error ?? (i === 0 ? (v.brokerError ?? '') : '')),
          ]),
        ),
      ),
    );
  }
  if (alerts && alerts.length > 0) {
    lines.push('', paint(1, 'ALERTS'));
    lines.push(...table(['RULE', 'SUBJECT', 'SINCE', 'MESSAGE'], alerts.map((a) => [paint(31, a.rule), a.subject, time(a.since), a.message])));
  }
  return lines.join('\n');
}

function table(header: string[], rows: string[][]): string[] {
  // eslint-disable-next-line no-control-regex
  const visible = (s: string) => s.replace(/\x1b\[\d+m/g, '').length;
  const widths = header.map((h, i) => Math.max(visible(h), ...rows.map((r) => visible(r[i] ?? ''))));
  const line = (cells: string[]) => `  ${cells.map((c, i) => c + ' '.repeat((widths[i] ?? 0) - visible(c))).join('  ')}`.trimEnd();
  return [line(header), ...rows.map(line)];
}
