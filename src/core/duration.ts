import { DurationError } from './errors.js';

/** A duration: milliseconds as a number, or a string such as `"500ms"`, `"10s"`, `"1m30s"`, `"2h"`. */
export type Duration = number | string;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

/**
 * Parses a {@link Duration} into whole milliseconds.
 * @param field names the setting in the error message, e.g. `task "sync": every`.
 * @throws DurationError for anything that is not a finite, non-negative duration.
 */
export function parseDuration(value: unknown, field: string): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) {
      throw new DurationError(`${field}: expected a non-negative number of milliseconds, got ${value}`);
    }
    return Math.round(value);
  }
  if (typeof value !== 'string') {
    throw new DurationError(`${field}: expected a duration such as "10s" or a number of ms, got ${describe(value)}`);
  }
  const text = value.trim();
  if (text === '' || text.length > 64) {
    throw new DurationError(`${field}: expected a duration such as "10s" or "1m30s", got ${JSON.stringify(value)}`);
  }
  if (/^\d+$/.test(text)) return Number(text);
  let total = 0;
  PART.lastIndex = 0;
  let consumed = 0;
  let match: RegExpExecArray | null;
  while ((match = PART.exec(text)) !== null) {
    total += Number(match[1]) * (UNIT_MS[match[2] as string] as number);
    consumed = PART.lastIndex;
  }
  if (consumed !== text.length || !Number.isFinite(total)) {
    throw new DurationError(
      `${field}: expected a duration such as "500ms", "10s", "1m30s" (units ms, s, m, h, d), got ${JSON.stringify(value)}`,
    );
  }
  return Math.round(total);
}

/** Formats milliseconds for people: `850ms`, `12.5s`, `3m20s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(ms < 10_000 ? 2 : 1))}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return seconds === 0 ? `${minutes}m` : `${minutes}m${seconds}s`;
}

export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value);
  try {
    return `${typeof value} ${JSON.stringify(value)}`;
  } catch {
    return typeof value;
  }
}
