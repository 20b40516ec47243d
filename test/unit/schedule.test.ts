/**
 * Schedules: a tick is identified by its scheduled wall time, the same on every node. `every` is aligned to
 * the epoch; cron follows its time zone through DST.
 */
import { describe, expect, it } from 'vitest';
import { parseSchedule, scheduleFromDescription, ticksBetween } from '../../src/scheduler/schedule.js';

const utc = (...args: [number, number, number, number?, number?, number?]) => Date.UTC(...args);
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

function nextN(schedule: ReturnType<typeof parseSchedule>, from: number, n: number): string[] {
  const out: string[] = [];
  let t = from;
  for (let i = 0; i < n; i++) {
    const next = schedule.next(t);
    if (next === undefined) break;
    out.push(iso(next)!);
    t = next;
  }
  return out;
}

describe('every', () => {
  it('aligns ticks to whole multiples of the interval since the epoch', () => {
    const s = parseSchedule({ every: '10s' }, 't');
    expect(s.intervalMs).toBe(10_000);
    expect(s.description).toBe('every 10s');
    expect(s.next(12_345)).toBe(20_000);
    expect(s.next(20_000)).toBe(30_000); // strictly after
    expect(s.latest(20_000)).toBe(20_000); // at or before
    expect(s.latest(29_999)).toBe(20_000);
    const at = utc(2026, 0, 1, 12, 0, 7);
    expect(s.next(at)).toBe(utc(2026, 0, 1, 12, 0, 10));
  });

  it('aligns odd intervals to the epoch too, so every node agrees without sharing state', () => {
    const s = parseSchedule({ every: '1m30s' }, 't');
    expect(s.intervalMs).toBe(90_000);
    const a = s.next(utc(2026, 0, 1, 0, 0, 1));
    const b = s.next(utc(2026, 0, 1, 0, 0, 59));
    expect(a).toBe(b);
    expect(a! % 90_000).toBe(0);
    expect(parseSchedule({ every: 250 }, 't').next(1001)).toBe(1250);
    expect(parseSchedule({ every: 250 }, 't').description).toBe('every 250ms');
  });
});

describe('cron', () => {
  it('supports a seconds field', () => {
    const s = parseSchedule({ cron: '*/2 * * * * *' }, 't');
    const from = utc(2026, 0, 1, 0, 0, 0);
    expect(nextN(s, from, 3)).toEqual(['2026-01-01T00:00:02.000Z', '2026-01-01T00:00:04.000Z', '2026-01-01T00:00:06.000Z']);
    expect(s.latest(utc(2026, 0, 1, 0, 0, 5))).toBe(utc(2026, 0, 1, 0, 0, 4));
    expect(s.latest(utc(2026, 0, 1, 0, 0, 4))).toBe(utc(2026, 0, 1, 0, 0, 4));
    expect(s.intervalMs).toBeUndefined();
  });

  it('uses UTC by default and five fields as minute precision', () => {
    const s = parseSchedule({ cron: '30 9 * * *' }, 't');
    expect(iso(s.next(utc(2026, 0, 1)))).toBe('2026-01-01T09:30:00.000Z');
  });

  it('follows a time zone through spring-forward (Europe/Berlin): a fixed daily time keeps local time', () => {
    const s = parseSchedule({ cron: '0 0 9 * * *', timezone: 'Europe/Berlin' }, 't');
    expect(s.description).toBe('cron 0 0 9 * * * tz Europe/Berlin');
    // DST starts on Sunday 29 March 2026 at 02:00 CET → 03:00 CEST.
    expect(nextN(s, utc(2026, 2, 27), 4)).toEqual([
      '2026-03-27T08:00:00.000Z', // 09:00 CET (UTC+1)
      '2026-03-28T08:00:00.000Z',
      '2026-03-29T07:00:00.000Z', // 09:00 CEST (UTC+2)
      '2026-03-30T07:00:00.000Z',
    ]);
  });

  it('runs a local time skipped by spring-forward once, at the next valid time', () => {
    const s = parseSchedule({ cron: '0 30 2 * * *', timezone: 'Europe/Berlin' }, 't');
    expect(nextN(s, utc(2026, 2, 27), 4)).toEqual([
      '2026-03-27T01:30:00.000Z',
      '2026-03-28T01:30:00.000Z',
      '2026-03-29T01:00:00.000Z', // 02:30 does not exist: 03:00 CEST
      '2026-03-30T00:30:00.000Z',
    ]);
  });

  it('runs a local time repeated by fall-back once', () => {
    const s = parseSchedule({ cron: '0 30 2 * * *', timezone: 'Europe/Berlin' }, 't');
    // DST ends on Sunday 25 October 2026 at 03:00 CEST → 02:00 CET: 02:30 happens twice.
    const ticks = nextN(s, utc(2026, 9, 24, 12), 3);
    expect(ticks).toEqual(['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z', '2026-10-27T01:30:00.000Z']);
    expect(ticksBetween(s, utc(2026, 9, 24, 12), utc(2026, 9, 25, 12))?.count).toBe(1);
  });

  it('counts real elapsed ticks across DST for sub-hourly patterns', () => {
    const s = parseSchedule({ cron: '*/30 * * * *', timezone: 'Europe/Berlin' }, 't');
    // Four real hours contain eight half-hour ticks, whether the local clock skips or repeats an hour.
    expect(ticksBetween(s, utc(2026, 2, 28, 23), utc(2026, 2, 29, 3))?.count).toBe(8);
    expect(ticksBetween(s, utc(2026, 9, 24, 23), utc(2026, 9, 25, 3))?.count).toBe(8);
  });
});

describe('ticksBetween', () => {
  const every = parseSchedule({ every: '1s' }, 't');
  const cron = parseSchedule({ cron: '*/2 * * * * *' }, 't');

  it('counts ticks in (after, until] for intervals', () => {
    expect(ticksBetween(every, 0, 10_000)).toEqual({ first: 1000, last: 10_000, count: 10 });
    expect(ticksBetween(every, 500, 10_999)).toEqual({ first: 1000, last: 10_000, count: 10 });
    expect(ticksBetween(every, 1000, 1000)).toBeUndefined();
    expect(ticksBetween(every, 1000, 1999)).toBeUndefined();
    expect(ticksBetween(every, 1000, 2000)).toEqual({ first: 2000, last: 2000, count: 1 });
    expect(ticksBetween(every, 5000, 1000)).toBeUndefined(); // a clock that went backwards
  });

  it('counts ticks in (after, until] for cron, up to a limit', () => {
    const base = utc(2026, 0, 1);
    expect(ticksBetween(cron, base, base + 60_000)).toEqual({ first: base + 2000, last: base + 60_000, count: 30 });
    expect(ticksBetween(cron, base + 1, base + 1999)).toBeUndefined();
    expect(ticksBetween(cron, base, base + 60_000, 5)?.count).toBe(5);
  });
});

describe('scheduleFromDescription', () => {
  it('rebuilds a schedule from its description (what status uses for the next tick)', () => {
    for (const options of [{ every: '10s' }, { every: 1500 }, { cron: '*/2 * * * * *' }, { cron: '0 0 9 * * *', timezone: 'Europe/Berlin' }]) {
      const s = parseSchedule(options, 't');
      const rebuilt = scheduleFromDescription(s.description);
      expect(rebuilt).toBeDefined();
      const at = utc(2026, 2, 28, 13, 17, 3);
      expect(rebuilt!.next(at)).toBe(s.next(at));
    }
    expect(scheduleFromDescription('nonsense')).toBeUndefined();
    expect(scheduleFromDescription('every 10x')).toBeUndefined();
  });
});
