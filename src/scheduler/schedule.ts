/**
 * Schedules: when a task's ticks fall. A tick is identified by its scheduled wall time (ms since the
 * epoch), the same on every node, which is what makes "claim each tick once" possible across nodes with
 * skewed clocks.
 *
 * - `every`: ticks at whole multiples of the interval since the Unix epoch (`every: '10s'` fires at
 *   :00, :10, :20 …), so all nodes agree on tick times without sharing any state.
 * - `cron`: croner syntax, 5 fields or 6 with seconds, optional IANA time zone (DST handled by croner:
 *   a local time skipped by DST runs at the next valid time, a repeated one runs once).
 * - `at`: one tick at a fixed instant (a `Date` or an ISO 8601 string with a time zone designator);
 *   once it ran (or was recorded missed) the schedule has no more ticks.
 */
import { Cron } from 'croner';
import { parseDuration, type Duration } from '../core/duration.js';
import { ConfigError, ScheduleError } from '../core/errors.js';

export interface Schedule {
  /** How the schedule was written, for status output: `every 10s`, `cron 0 * * * * *`. */
  readonly description: string;
  /** The first tick strictly after `afterMs`, or undefined when there is none. */
  next(afterMs: number): number | undefined;
  /** The last tick at or before `atMs`, or undefined when there is none. */
  latest(atMs: number): number | undefined;
  /** The fixed distance between ticks, for `every` schedules: lets ranges be counted without iterating. */
  readonly intervalMs?: number;
  /** The only tick of a single-tick schedule (`at`). */
  readonly once?: number;
}

export interface ScheduleOptions {
  /** Fixed interval, e.g. `'10s'`; ticks are aligned to the epoch. Minimum 100ms. */
  readonly every?: Duration;
  /** Cron pattern (croner): 5 fields, or 6 with seconds first. */
  readonly cron?: string;
  /** IANA time zone for `cron`, e.g. `'Europe/Paris'`. Default: UTC. */
  readonly timezone?: string;
  /** One tick at this instant: a `Date`, or an ISO 8601 string with `Z` or an offset (`2026-05-01T09:00:00+02:00`). */
  readonly at?: Date | string;
}

export const MIN_INTERVAL_MS = 100;

export function parseSchedule(options: ScheduleOptions, where: string): Schedule {
  const given = [options.every, options.cron, options.at].filter((v) => v !== undefined).length;
  if (given !== 1) {
    throw new ConfigError(`${where}: give exactly one of "every" (e.g. "10s"), "cron" (e.g. "*/5 * * * * *") or "at" (a Date or ISO time)`);
  }
  if (options.at !== undefined) {
    if (options.timezone !== undefined) throw new ConfigError(`${where}: "timezone" applies to "cron" only`);
    return atSchedule(parseInstant(options.at, `${where}: at`));
  }
  if (options.every !== undefined) {
    if (options.timezone !== undefined) throw new ConfigError(`${where}: "timezone" applies to "cron" only`);
    const intervalMs = parseDuration(options.every, `${where}: every`);
    if (intervalMs < MIN_INTERVAL_MS) {
      throw new ScheduleError(`${where}: every must be at least ${MIN_INTERVAL_MS}ms, got ${JSON.stringify(options.every)}`);
    }
    return everySchedule(intervalMs, typeof options.every === 'string' ? options.every : `${intervalMs}ms`);
  }
  return cronSchedule(options.cron, options.timezone, where);
}

function everySchedule(intervalMs: number, written: string): Schedule {
  return {
    description: `every ${written}`,
    intervalMs,
    next: (afterMs) => (Math.floor(afterMs / intervalMs) + 1) * intervalMs,
    latest: (atMs) => Math.floor(atMs / intervalMs) * intervalMs,
  };
}

const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;

/** A `Date` or an ISO 8601 string with a zone designator (a local time without one would differ by host). */
function parseInstant(value: unknown, field: string): number {
  const ms = value instanceof Date ? value.getTime() : typeof value === 'string' && ISO_WITH_ZONE.test(value) ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) {
    throw new ScheduleError(
      `${field}: expected a valid Date or an ISO 8601 time with a zone such as "2026-05-01T09:00:00Z", got ${value instanceof Date ? 'an invalid Date' : JSON.stringify(value)}`,
    );
  }
  return ms;
}

function atSchedule(atMs: number): Schedule {
  return {
    description: `at ${new Date(atMs).toISOString()}`,
    once: atMs,
    next: (afterMs) => (atMs > afterMs ? atMs : undefined),
    latest: (atOrBefore) => (atMs <= atOrBefore ? atMs : undefined),
  };
}

function cronSchedule(pattern: unknown, timezone: unknown, where: string): Schedule {
  if (typeof pattern !== 'string' || pattern.trim() === '') {
    throw new ScheduleError(`${where}: cron must be a pattern such as "*/5 * * * * *", got ${JSON.stringify(pattern)}`);
  }
  if (timezone !== undefined) {
    try {
      if (typeof timezone !== 'string') throw new Error('not a string');
      new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    } catch {
      throw new ScheduleError(`${where}: timezone must be an IANA zone such as "Europe/Paris", got ${JSON.stringify(timezone)}`);
    }
  }
  let cron: Cron;
  try {
    cron = new Cron(pattern, { paused: true, ...(timezone ? { timezone: timezone as string } : { timezone: 'UTC' }) });
  } catch (error) {
    throw new ScheduleError(`${where}: invalid cron ${JSON.stringify(pattern)}: ${(error as Error).message}`, { cause: error });
  }
  if (cron.nextRun(new Date(0)) === null && cron.nextRun() === null) {
    throw new ScheduleError(`${where}: cron ${JSON.stringify(pattern)} never fires`);
  }
  return {
    description: `cron ${pattern}${timezone ? ` tz ${timezone as string}` : ''}`,
    next: (afterMs) => cron.nextRun(new Date(afterMs))?.getTime(),
    latest: (atMs) => latestCronTick(cron, atMs),
  };
}

/**
 * The last tick at or before `atMs` *of the sequence `nextRun` produces*. croner's `previousRuns` and
 * `nextRun` disagree around DST: going back, it returns a local time repeated by fall-back that going
 * forward runs once, and it does not return the substitute (e.g. 03:00) of a time skipped by spring-forward.
 * Ticks must be one sequence whichever way they are computed, or a tick runs twice or never.
 */
function latestCronTick(cron: Cron, atMs: number): number | undefined {
  const nextAfter = (ms: number) => cron.nextRun(new Date(ms))?.getTime();
  let tick = cron.previousRuns(1, new Date(atMs + 1))[0]?.getTime();
  // Step back over ticks `nextRun` never produces (a repeated local time, the second time).
  for (let i = 0; i < 4 && tick !== undefined && nextAfter(tick - 1) !== tick; i++) {
    tick = cron.previousRuns(1, new Date(tick))[0]?.getTime();
  }
  if (tick === undefined) return undefined;
  // Step forward over ticks `previousRuns` skipped (the substitute of a skipped local time).
  for (let next = nextAfter(tick); next !== undefined && next <= atMs; next = nextAfter(tick)) tick = next;
  return tick;
}

/** Parses a description written by {@link Schedule.description} (used by `baton status` for next ticks). */
export function scheduleFromDescription(description: string): Schedule | undefined {
  try {
    if (description.startsWith('every ')) return parseSchedule({ every: description.slice(6) }, 'schedule');
    if (description.startsWith('at ')) return parseSchedule({ at: description.slice(3) }, 'schedule');
    const match = /^cron (.+?)(?: tz (\S+))?$/.exec(description);
    if (match) return parseSchedule({ cron: match[1], ...(match[2] ? { timezone: match[2] } : {}) }, 'schedule');
  } catch {
    return undefined;
  }
  return undefined;
}

/** Ticks in the range (afterMs, untilMs]: the first, the last and how many (counted up to `limit`). */
export function ticksBetween(
  schedule: Schedule,
  afterMs: number,
  untilMs: number,
  limit = 10_000,
): { first: number; last: number; count: number } | undefined {
  const first = schedule.next(afterMs);
  const last = schedule.latest(untilMs);
  if (first === undefined || last === undefined || first > untilMs || last <= afterMs) return undefined;
  if (schedule.intervalMs) return { first, last, count: Math.round((last - first) / schedule.intervalMs) + 1 };
  let count = 1;
  for (let t = first; count < limit; count++) {
    const next = schedule.next(t);
    if (next === undefined || next > last) break;
    t = next;
  }
  return { first, last, count };
}
