/**
 * Who a process is, precisely enough that another process on the same host can tell, without waiting for
 * a TTL, that it is gone — and never wrongly.
 *
 * Guarantees: {@link processState} answers `'gone'` only when the process provably cannot run again:
 * same host (boot id), same pid namespace, and its pid is free, a zombie, or reused by a process that
 * started at another time. Everything else is `'alive'` or `'unknown'`, and callers then wait for the TTL.
 * Non-guarantees: outside Linux (no /proc) the answer is always `'unknown'`.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

export interface ProcessIdentity {
  host: string;
  pid: number;
  /** Linux boot id: changes on every boot, so a reboot never makes an old pid look alive. */
  bootId?: string;
  /** Pid namespace inode: two containers on one host do not share pids. */
  pidNamespace?: string;
  /** Start time of the process in clock ticks since boot (field 22 of /proc/PID/stat): defeats pid reuse. */
  startTicks?: string;
}

export type ProcessState = 'alive' | 'gone' | 'unknown';

function readOrUndefined(read: () => string): string | undefined {
  try {
    return read().trim();
  } catch {
    return undefined;
  }
}

/** Parses /proc/PID/stat; the command name may contain spaces and parentheses, so split after the last ')'. */
function readStat(pid: number): { state: string; startTicks: string } | undefined {
  const stat = readOrUndefined(() => readFileSync(`/proc/${pid}/stat`, 'utf8'));
  if (stat === undefined) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  return { state: fields[0] ?? '?', startTicks: fields[19] ?? '' };
}

let cached: ProcessIdentity | undefined;

export function currentProcessIdentity(): ProcessIdentity {
  if (cached) return cached;
  const identity: ProcessIdentity = { host: hostname(), pid: process.pid };
  const bootId = readOrUndefined(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8'));
  const pidNamespace = readOrUndefined(() => readlinkSync('/proc/self/ns/pid'));
  const stat = readStat(process.pid);
  if (bootId && pidNamespace && stat) {
    identity.bootId = bootId;
    identity.pidNamespace = pidNamespace;
    identity.startTicks = stat.startTicks;
  }
  cached = identity;
  return identity;
}

/** Can this process see `other` and tell whether it still runs? */
export function sharesProcessTable(other: ProcessIdentity): boolean {
  const self = currentProcessIdentity();
  return (
    self.bootId !== undefined &&
    other.bootId === self.bootId &&
    other.pidNamespace === self.pidNamespace &&
    other.startTicks !== undefined
  );
}

export function processState(other: ProcessIdentity): ProcessState {
  if (!sharesProcessTable(other)) return 'unknown';
  const stat = readStat(other.pid);
  if (stat === undefined) {
    // /proc may hide other users' processes (hidepid): only ESRCH from kill(pid, 0) proves there is none.
    try {
      process.kill(other.pid, 0);
      return 'unknown';
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ESRCH' ? 'gone' : 'unknown';
    }
  }
  if (stat.state === 'Z' || stat.state === 'X') return 'gone';
  return stat.startTicks === other.startTicks ? 'alive' : 'gone';
}
