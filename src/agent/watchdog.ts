/**
 * The watchdog: a tiny Node process between the agent and each command it runs, so that a command never
 * outlives its run — not even when the agent is killed with SIGKILL, which no handler of the agent sees.
 *
 *   agent ──stdin pipe (control)──▶ watchdog ──spawn(detached)──▶ command (own process group)
 *         ◀──fd 3 (pid, exit status)──          command's stdout/stderr are the agent's pipes directly
 *
 * - The command runs in its own process group (`detached: true`: a new session, pgid = its pid), with
 *   stdin from /dev/null and its stdout/stderr going straight to the agent (the watchdog copies nothing).
 * - `term` on the control pipe (the run's signal aborted: timeout, shutdown): SIGTERM to the whole group,
 *   SIGKILL `killGraceMs` later if anything of the group is left. `kill` (ownership lost): SIGKILL at once.
 * - No `ping` on the control pipe for `silenceMs`: the agent is stopped (SIGSTOP) or its event loop is
 *   blocked past its lease deadline, so it cannot stop the command itself: SIGKILL to the group at once.
 * - End of file on the control pipe: the agent is gone (exit, crash, SIGKILL — the kernel closes its end
 *   of the pipe in every case). The group gets SIGKILL at once, not a grace period: the agent's lease is
 *   gone too and another node may take the task within a second (crash detection), so the command must
 *   stop before the next owner's run can start.
 * - When the command itself exits, what it left running in its group (`cmd &`) gets SIGTERM, then SIGKILL
 *   after the grace: a run ends with its whole group, as systemd's KillMode=control-group does.
 * - The watchdog ignores SIGINT, SIGTERM and SIGHUP (a terminal's Ctrl-C reaches the whole foreground
 *   group; systemd's KillMode=mixed signals the agent only): it obeys its control pipe alone.
 * Non-guarantees: a process that leaves the group (`setsid`, a double-forking daemon) escapes it; a
 * SIGKILL of the watchdog itself orphans the command (nothing then watches it).
 *
 * It is plain JavaScript run with `node -e`, so it works the same under tsx and from dist/.
 */

/** What the watchdog reports on fd 3, one JSON object per line. */
export type WatchdogReport =
  | { readonly pid: number }
  | { readonly code: number | null; readonly signal: string | null }
  | { readonly error: string };

/** What the watchdog is given (its one argument, as JSON). */
export interface WatchdogSpec {
  readonly argv: readonly string[];
  readonly cwd?: string;
  readonly killGraceMs: number;
  /**
   * The agent pings the control pipe; a silence longer than this (the agent stopped or its event loop
   * blocked past its lease deadline) gets the group SIGKILLed. Undefined: no such check.
   */
  readonly silenceMs?: number;
  /** `ps` shows the watchdog as `baton-watchdog <title>`. */
  readonly title: string;
  /** NODE_OPTIONS for the command (kept away from the watchdog's own Node). */
  readonly nodeOptions?: string;
}

export const WATCHDOG_SOURCE = String.raw`
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const spec = JSON.parse(process.argv[1]);
process.title = 'baton-watchdog ' + spec.title;
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => {});
const report = (o) => { try { fs.writeSync(3, JSON.stringify(o) + '\n'); } catch {} };
const env = { ...process.env };
if (spec.nodeOptions !== undefined) env.NODE_OPTIONS = spec.nodeOptions;
let child;
// Checked here, because spawn reports a missing cwd as ENOENT of the program, which misleads.
if (spec.cwd !== undefined && !fs.existsSync(spec.cwd)) {
  report({ error: 'cwd ' + JSON.stringify(spec.cwd) + ' does not exist' });
  process.exit(0);
}
try {
  child = spawn(spec.argv[0], spec.argv.slice(1), { cwd: spec.cwd, env, detached: true, stdio: ['ignore', 'inherit', 'inherit'] });
} catch (e) {
  report({ error: String(e && e.message || e) });
  process.exit(0);
}
const pgid = child.pid;
// A member of the group that is not a zombie: zombies are dead (they wait for a reaper that may be slow,
// e.g. a container's PID 1), so they must not hold the run open. Linux: /proc; elsewhere: kill(-pgid, 0).
const liveMember = () => {
  let pids;
  try { pids = fs.readdirSync('/proc'); } catch { return undefined; }
  for (const pid of pids) {
    if (!/^[0-9]+$/.test(pid)) continue;
    let stat;
    try { stat = fs.readFileSync('/proc/' + pid + '/stat', 'utf8'); } catch { continue; }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') return true;
  }
  return false;
};
const alive = () => {
  if (pgid === undefined) return false;
  try { process.kill(-pgid, 0); } catch { return false; }
  const member = liveMember();
  return member === undefined ? true : member;
};
const signal = (s) => { if (pgid !== undefined) try { process.kill(-pgid, s); } catch {} };
let killTimer;
const stop = (graceMs) => {
  if (!alive()) return;
  if (graceMs <= 0) { signal('SIGKILL'); return; }
  signal('SIGTERM');
  if (!killTimer) killTimer = setTimeout(() => signal('SIGKILL'), graceMs);
};
child.on('spawn', () => report({ pid: pgid }));
child.on('error', (e) => { report({ error: String(e.message || e) }); process.exit(0); });
child.on('exit', (code, sig) => {
  // The leader is gone; the rest of its group goes with the run.
  stop(spec.killGraceMs);
  const done = () => { clearTimeout(killTimer); report({ code, signal: sig }); process.exit(0); };
  const poll = setInterval(() => { if (!alive()) { clearInterval(poll); done(); } }, 25);
  if (!alive()) { clearInterval(poll); done(); }
});
// Control lines: 'ping' (the agent is alive), 'term', 'kill'.
let control = '';
let lastPing = performance.now();
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  control += d;
  let newline;
  while ((newline = control.indexOf('\n')) >= 0) {
    const line = control.slice(0, newline);
    control = control.slice(newline + 1);
    if (line === 'ping') lastPing = performance.now();
    else if (line === 'kill') stop(0);
    else if (line === 'term') stop(spec.killGraceMs);
  }
});
// A silent agent (stopped, its event loop blocked) can no longer prove its lease: kill, as it would.
if (spec.silenceMs !== undefined) {
  const check = setInterval(() => { if (performance.now() - lastPing > spec.silenceMs) { clearInterval(check); stop(0); } }, Math.min(250, spec.silenceMs / 4));
  check.unref();
}
// End of file: the agent died (even by SIGKILL). Its lease is gone: kill at once.
process.stdin.on('end', () => stop(0));
process.stdin.on('error', () => stop(0));
`;
