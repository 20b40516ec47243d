/** Renders a status snapshot as a readable table; colours only when writing to a terminal. */
import { formatDuration } from '../core/duration.js';
import type { StatusSnapshot } from '../monitor/status.js';

/** Modes whose tasks have no owner between ticks (the next tick is competed for). */
const TURN_MODES = new Set(['mutex', 'round-robin']);

export function formatStatus(status: StatusSnapshot, options: { color: boolean }): string {
  const paint = (code: number, text: string) => (options.color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const time = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '-');
  const lines: string[] = [];
  lines.push(
    `cluster ${paint(1, status.cluster)} · ${status.store} · ${status.nodes.length} node(s) · ${status.tasks.length} task(s) · at ${time(status.at)} UTC`,
  );
  lines.push('', paint(1, 'NODES'));
  lines.push(
    ...table(
      ['ID', 'HOST:PID', 'VERSION', 'UP', 'EXPIRES IN', 'OWNS', 'LABELS'],
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
      ]),
    ),
  );
  lines.push('', paint(1, 'TASKS'));
  lines.push(
    ...table(
      ['TASK', 'MODE', 'SCHEDULE', 'OWNER', 'TOKEN', 'LAST RUN', 'OUTCOME', 'NEXT TICK'],
      status.tasks.map((t) => {
        const run = t.lastRun;
        const outcome = run ? `${run.status}${run.durationMs !== undefined ? ` ${formatDuration(run.durationMs)}` : ''}` : '-';
        const colour = run?.status === 'succeeded' ? 32 : run?.status === 'failed' || run?.status === 'missed' ? 31 : 33;
        return [
          t.paused ? `${t.name} ${paint(33, '(paused)')}` : t.name,
          t.conflict ? `${t.mode} ${paint(31, '(conflict)')}` : t.mode,
          t.schedules.join(' | ') || '(not declared)',
          t.owner ? `${t.owner.node} ${t.owner.host}:${t.owner.pid}` : TURN_MODES.has(t.mode) ? '(between ticks)' : paint(31, '(none)'),
          t.owner?.token ?? '-',
          run ? `${time(run.tick)}${run.node ? ` on ${run.node}` : ''}` : '-',
          run ? paint(colour, outcome) : '-',
          time(t.nextTick),
        ];
      }),
    ),
  );
  return lines.join('\n');
}

function table(header: string[], rows: string[][]): string[] {
  // eslint-disable-next-line no-control-regex
  const visible = (s: string) => s.replace(/\x1b\[\d+m/g, '').length;
  const widths = header.map((h, i) => Math.max(visible(h), ...rows.map((r) => visible(r[i] ?? ''))));
  const line = (cells: string[]) => `  ${cells.map((c, i) => c + ' '.repeat((widths[i] ?? 0) - visible(c))).join('  ')}`.trimEnd();
  return [line(header), ...rows.map(line)];
}
