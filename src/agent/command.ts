/**
 * Runs one command for one run attempt: in its own process group behind a watchdog (watchdog.ts), with
 * the last 64 KiB of stdout and of stderr kept (output-tail.ts), stopped as a group when `signal` aborts.
 *
 * Guarantees: when the returned promise settles, the command's process group is gone (SIGTERM, then
 * SIGKILL after `killGraceMs`; SIGKILL at once when `killAtOnce` says so) — also for processes it left in
 * the background; when the agent dies, even by SIGKILL, the watchdog kills the group at once. Memory per run is bounded (2 × 64 KiB of output).
 * Non-guarantees: processes that leave the group (setsid, daemons) are not tracked.
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { Clock } from '../core/clock.js';
import { BatonError } from '../core/errors.js';
import type { AgentCommand } from './config.js';
import { OUTPUT_TAIL_BYTES, OutputTail } from './output-tail.js';
import { WATCHDOG_SOURCE, type WatchdogReport, type WatchdogSpec } from './watchdog.js';

export interface CommandSpec {
  readonly command: AgentCommand;
  /** The full environment of the command. */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string | undefined;
  readonly killGraceMs: number;
  /** Shown in `ps` as `baton-watchdog <title>`. */
  readonly title: string;
  /** Aborting it stops the command's group (SIGTERM, then SIGKILL after the grace). */
  readonly signal: AbortSignal;
  /**
   * For an abort `reason` that leaves no time for a grace (ownership lost: another node may start the
   * task within about the session's safety margin): true sends SIGKILL to the group at once.
   */
  readonly killAtOnce?: (reason: unknown) => boolean;
  /**
   * The lease's self-fencing deadline (TTL − safety margin): the watchdog kills the group when this
   * process stays silent that long (stopped, event loop blocked), since it could not act itself.
   * Undefined: no such check.
   */
  readonly silenceMs?: number;
  /** Called with the command's pid (= its process group id) once it runs. */
  readonly onSpawn?: (pid: number) => void;
  readonly tailBytes?: number;
  readonly clock: Clock;
}

export interface CommandResult {
  /** The exit code, or null when a signal ended it (or it never started). */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly pid: number | undefined;
  readonly durationMs: number;
  readonly stdout: OutputTail;
  readonly stderr: OutputTail;
  /** The command could not be started (no such file, bad cwd…). */
  readonly spawnError?: string;
}

/** A command exited with a non-zero code, was killed by a signal, or could not start: the run failed. */
export class CommandFailedError extends BatonError {
  readonly result: CommandResult;
  constructor(message: string, result: CommandResult) {
    super('AGENT_COMMAND_FAILED', message);
    this.result = result;
    // A JS stack says nothing about a shell command; the run record shows the message alone.
    this.stack = `${this.name}: ${message}`;
  }
}

/** After the watchdog exits, how long the output pipes may stay open (held by a process that left the group). */
const PIPE_DRAIN_MS = 1000;

/** Runs the command to its end; never rejects (a start failure is in `spawnError`). */
export function runCommand(spec: CommandSpec): Promise<CommandResult> {
  const argv = 'argv' in spec.command ? [...spec.command.argv] : [spec.command.shell, '-c', spec.command.script];
  const { NODE_OPTIONS: nodeOptions, ...env } = spec.env;
  const watchdogSpec: WatchdogSpec = {
    argv,
    ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}),
    killGraceMs: spec.killGraceMs,
    ...(spec.silenceMs !== undefined ? { silenceMs: spec.silenceMs } : {}),
    title: spec.title,
    ...(nodeOptions !== undefined ? { nodeOptions } : {}),
  };
  const stdout = new OutputTail(spec.tailBytes ?? OUTPUT_TAIL_BYTES);
  const stderr = new OutputTail(spec.tailBytes ?? OUTPUT_TAIL_BYTES);
  const { clock } = spec;
  const started = clock.monotonic();
  return new Promise<CommandResult>((resolve) => {
    // The watchdog runs with the command's environment minus NODE_OPTIONS (meant for the command, not for it).
    const watchdog = spawn(process.execPath, ['-e', WATCHDOG_SOURCE, JSON.stringify(watchdogSpec)], {
      env,
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    let pid: number | undefined;
    let exit: { code: number | null; signal: string | null } | undefined;
    let spawnError: string | undefined;
    let reports = '';
    const status = watchdog.stdio[3] as Readable;
    status.setEncoding('utf8');
    status.on('data', (text: string) => {
      reports += text;
      let newline: number;
      while ((newline = reports.indexOf('\n')) >= 0) {
        const line = reports.slice(0, newline);
        reports = reports.slice(newline + 1);
        let report: WatchdogReport;
        try {
          report = JSON.parse(line) as WatchdogReport;
        } catch {
          // Only the watchdog writes here; a garbled line must not crash the agent from an event handler.
          continue;
        }
        if ('pid' in report) {
          pid = report.pid;
          spec.onSpawn?.(report.pid);
        } else if ('error' in report) spawnError = report.error;
        else exit = report;
      }
    });
    watchdog.stdout.on('data', (chunk: Buffer) => stdout.write(chunk));
    watchdog.stderr.on('data', (chunk: Buffer) => stderr.write(chunk));
    // The watchdog's stdin is the control pipe: kept open while the run lasts; its end would mean "agent gone".
    watchdog.stdin.on('error', () => undefined);
    const abort = () => {
      if (watchdog.stdin.writable) watchdog.stdin.write(spec.killAtOnce?.(spec.signal.reason) ? 'kill\n' : 'term\n');
    };
    if (spec.signal.aborted) abort();
    else spec.signal.addEventListener('abort', abort, { once: true });
    // Pings several times per silence window: only a stopped or blocked process misses them all.
    let cancelPing = (): void => undefined;
    const ping = () => {
      if (watchdog.stdin.writable) watchdog.stdin.write('ping\n');
      cancelPing = clock.setTimer(Math.max(50, Math.floor((spec.silenceMs ?? 0) / 4)), ping);
    };
    if (spec.silenceMs !== undefined) ping();

    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      spec.signal.removeEventListener('abort', abort);
      cancelPing();
      cancelDrain();
      watchdog.stdin.destroy();
      resolve({
        exitCode: exit?.code ?? null,
        signal: (exit?.signal ?? null) as NodeJS.Signals | null,
        pid,
        durationMs: Math.round(clock.monotonic() - started),
        stdout,
        stderr,
        ...(spawnError !== undefined ? { spawnError } : exit === undefined ? { spawnError: 'the watchdog ended without reporting an exit status' } : {}),
      });
    };
    let cancelDrain = (): void => undefined;
    watchdog.on('close', finish);
    watchdog.on('exit', () => {
      // Normally 'close' follows at once; a process that left the group may hold the pipes open.
      cancelDrain = clock.setTimer(PIPE_DRAIN_MS, () => {
        watchdog.stdout.destroy();
        watchdog.stderr.destroy();
        status.destroy();
        finish();
      });
    });
    watchdog.on('error', (error) => {
      spawnError = `cannot start the watchdog (${process.execPath}): ${error.message}`;
      finish();
    });
  });
}

/** One line describing how a command ended: `exit code 3`, `killed by SIGKILL`, `could not start: …`. */
export function describeExit(result: CommandResult): string {
  if (result.spawnError !== undefined) return `could not start: ${result.spawnError}`;
  if (result.signal !== null) return `killed by ${result.signal}`;
  return `exit code ${result.exitCode}`;
}
