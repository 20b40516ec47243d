/**
 * Cursor kinds of an HTTP sync: where the next request starts, how a record's position is read, how two
 * positions compare, and which query parameters a request carries by default.
 *
 * - `updatedSince`: the position of a record is `(updated_at, id)`, compared as a pair, so records sharing
 *   one timestamp are never skipped when a page ends between them (the classic Airbyte/Singer loss):
 *   requests ask for records strictly after `(since, afterId)`. An optional `lookback` re-reads a window
 *   before the cursor on the first request of each run, for sources whose records become visible late.
 * - `increasingId`: the position is the record's id (numbers, or decimal strings of any length).
 * - `pageToken`: an opaque token the API returns with each page; it cannot be compared, so it is never
 *   checked for going backwards (fencing alone guards it).
 *
 * Guarantees: for the two ordered kinds, the committed cursor is the maximum of every position committed
 * so far (see target.ts); a record without a readable position never moves it.
 */
import { ConfigError } from '../core/errors.js';
import { parseDuration, type Duration } from '../core/duration.js';

/** A committed position: JSON, stored as text in the cursor table. `null` means "from the start". */
export type CursorValue =
  | { readonly ts: string | number; readonly id: string | number | null }
  | { readonly id: string | number }
  | { readonly token: string };

/** How the sync keeps its place in the source. Every field but `kind` has a default. */
export type CursorOptions = UpdatedSinceCursorOptions | IncreasingIdCursorOptions | PageTokenCursorOptions;

export interface UpdatedSinceCursorOptions {
  readonly kind: 'updatedSince';
  /** The record's field holding its last-modified time (ISO-8601 text or a number). Default `updated_at`. */
  readonly field?: string;
  /** The record's unique id field, the tie-breaker between equal timestamps. Default `id`. */
  readonly idField?: string;
  /** Query parameter carrying the timestamp. Default `updated_since`. */
  readonly param?: string;
  /** Query parameter carrying the id of the last record at that timestamp. Default `after_id`. */
  readonly idParam?: string;
  /** Where a sync with no cursor yet starts (a timestamp as the API writes it). Default: no parameter at all. */
  readonly start?: string | number;
  /**
   * Re-read this window before the cursor on the first request of each run (the id tie-breaker is then
   * left out), for APIs that show records late. Records older than the cursor are upserted, the cursor
   * stays at its maximum. Default 0. Too large: every run re-reads (and re-upserts) the whole window.
   */
  readonly lookback?: Duration;
}

export interface IncreasingIdCursorOptions {
  readonly kind: 'increasingId';
  /** The record's field holding its increasing id. Default `id`. */
  readonly field?: string;
  /** Query parameter carrying the last id seen. Default `after_id`. */
  readonly param?: string;
  readonly start?: string | number;
}

export interface PageTokenCursorOptions {
  readonly kind: 'pageToken';
  /** Query parameter carrying the token. Default `page_token`; not sent when there is no token yet. */
  readonly param?: string;
  /** The record's id field, only to name a rejected record in the rejects table. Default `id`. */
  readonly idField?: string;
}

/** What a request needs to know about where it starts. */
export interface RequestPosition {
  /** The committed (or, within a run, reached) position; null before the first commit. */
  readonly cursor: CursorValue | null;
  /** True for the first request of a run (a `lookback` applies to it only). */
  readonly firstOfRun: boolean;
}

/** A cursor kind, resolved from its options. */
export interface CursorStrategy {
  readonly kind: CursorOptions['kind'];
  /** Ordered kinds never let the committed cursor go backwards; `pageToken` is opaque. */
  readonly ordered: boolean;
  /** The field naming a record in the rejects table. */
  readonly idField: string;
  /** The cursor a sync starts from when its row holds none. */
  readonly start: CursorValue | null;
  /** Where the first request of a run starts (the committed cursor, or a lookback before it). */
  startOfRun(committed: CursorValue | null): CursorValue | null;
  /** The default query parameters for a request from `from` (page size excluded). */
  params(from: CursorValue | null): Record<string, string>;
  /** A raw record's position, or undefined when its fields cannot be read (it never moves the cursor). */
  positionOf(record: unknown): CursorValue | undefined;
  /** Negative, zero or positive like a sort comparator; null sorts first. Ordered kinds only. */
  compare(a: CursorValue | null, b: CursorValue | null): number;
  /** Milliseconds from the cursor's timestamp to `now`, for `updatedSince`; undefined otherwise. */
  lagMs(cursor: CursorValue | null, now: number): number | undefined;
}

const FIELD = /^[A-Za-z_$][\w$.-]{0,127}$/;
const PARAM = /^[\w.\-[\]]{1,128}$/;

/** Resolves cursor options. @throws ConfigError naming the field. */
export function cursorStrategy(options: unknown, where: string): CursorStrategy {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(`${where}: source.cursor must be an object such as { kind: 'updatedSince' }, got ${JSON.stringify(options)}`);
  }
  const o = options as { kind?: unknown } & Record<string, unknown>;
  const known: Record<string, readonly string[]> = {
    updatedSince: ['kind', 'field', 'idField', 'param', 'idParam', 'start', 'lookback'],
    increasingId: ['kind', 'field', 'param', 'start'],
    pageToken: ['kind', 'param', 'idField'],
  };
  const allowed = known[String(o.kind)];
  if (!allowed) {
    throw new ConfigError(`${where}: source.cursor.kind must be "updatedSince", "increasingId" or "pageToken", got ${JSON.stringify(o.kind)}`);
  }
  const unknown = Object.keys(o).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw new ConfigError(`${where}: source.cursor: unknown option ${unknown.map((k) => JSON.stringify(k)).join(', ')} for kind "${String(o.kind)}" (known: ${allowed.join(', ')})`);
  }
  const name = (key: string, fallback: string, pattern: RegExp): string => {
    const value = o[key] ?? fallback;
    if (typeof value !== 'string' || !pattern.test(value)) {
      throw new ConfigError(`${where}: source.cursor.${key} must match ${pattern}, got ${JSON.stringify(o[key])}`);
    }
    return value;
  };
  const start = (): string | number | undefined => {
    const value = o.start;
    if (value === undefined) return undefined;
    if ((typeof value === 'number' && Number.isFinite(value)) || (typeof value === 'string' && value !== '')) return value;
    throw new ConfigError(`${where}: source.cursor.start must be a non-empty string or a finite number, got ${JSON.stringify(value)}`);
  };
  switch (o.kind) {
    case 'updatedSince': {
      const lookbackMs = o.lookback === undefined ? 0 : parseDuration(o.lookback, `${where}: source.cursor.lookback`);
      const s = start();
      if (s !== undefined && timestampMs(s) === undefined) {
        throw new ConfigError(`${where}: source.cursor.start must be an ISO-8601 timestamp or a number, got ${JSON.stringify(s)}`);
      }
      return updatedSince(name('field', 'updated_at', FIELD), name('idField', 'id', FIELD), name('param', 'updated_since', PARAM), name('idParam', 'after_id', PARAM), s, lookbackMs);
    }
    case 'increasingId': {
      const s = start();
      return increasingId(name('field', 'id', FIELD), name('param', 'after_id', PARAM), s);
    }
    default:
      return pageToken(name('param', 'page_token', PARAM), name('idField', 'id', FIELD));
  }
}

function updatedSince(field: string, idField: string, param: string, idParam: string, start: string | number | undefined, lookbackMs: number): CursorStrategy {
  const compare = (a: CursorValue | null, b: CursorValue | null): number => {
    if (a === null || b === null) return a === b ? 0 : a === null ? -1 : 1;
    const x = a as { ts: string | number; id: string | number | null };
    const y = b as { ts: string | number; id: string | number | null };
    const byTime = compareTimestamps(x.ts, y.ts);
    return byTime !== 0 ? byTime : compareIds(x.id, y.id);
  };
  return {
    kind: 'updatedSince',
    ordered: true,
    idField,
    start: start === undefined ? null : { ts: start, id: null },
    startOfRun(committed) {
      if (committed === null || lookbackMs === 0) return committed;
      const { ts } = committed as { ts: string | number };
      const ms = timestampMs(ts);
      if (ms === undefined) return committed;
      return { ts: typeof ts === 'number' ? ts - lookbackMs : new Date(ms - lookbackMs).toISOString(), id: null };
    },
    params(from) {
      if (from === null) return {};
      const { ts, id } = from as { ts: string | number; id: string | number | null };
      return id === null ? { [param]: String(ts) } : { [param]: String(ts), [idParam]: String(id) };
    },
    positionOf(record) {
      const ts = readField(record, field);
      const id = readField(record, idField);
      if (!isKeyValue(ts) || timestampMs(ts) === undefined || !isKeyValue(id)) return undefined;
      return { ts, id };
    },
    compare,
    lagMs(cursor, now) {
      if (cursor === null) return undefined;
      const ms = timestampMs((cursor as { ts: string | number }).ts);
      return ms === undefined ? undefined : Math.max(0, now - ms);
    },
  };
}

function increasingId(field: string, param: string, start: string | number | undefined): CursorStrategy {
  return {
    kind: 'increasingId',
    ordered: true,
    idField: field,
    start: start === undefined ? null : { id: start },
    startOfRun: (committed) => committed,
    params: (from) => (from === null ? {} : { [param]: String((from as { id: string | number }).id) }),
    positionOf(record) {
      const id = readField(record, field);
      return isKeyValue(id) ? { id } : undefined;
    },
    compare(a, b) {
      if (a === null || b === null) return a === b ? 0 : a === null ? -1 : 1;
      return compareIds((a as { id: string | number }).id, (b as { id: string | number }).id);
    },
    lagMs: () => undefined,
  };
}

function pageToken(param: string, idField: string): CursorStrategy {
  return {
    kind: 'pageToken',
    ordered: false,
    idField,
    start: null,
    startOfRun: (committed) => committed,
    params: (from) => (from === null ? {} : { [param]: (from as { token: string }).token }),
    positionOf: () => undefined,
    compare: () => 0,
    lagMs: () => undefined,
  };
}

/** Reads `a.b.c` from a record; undefined when any step is missing. */
export function readField(record: unknown, path: string): unknown {
  let value: unknown = record;
  for (const part of path.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function isKeyValue(value: unknown): value is string | number {
  return (typeof value === 'string' && value !== '') || (typeof value === 'number' && Number.isFinite(value));
}

/** Milliseconds of an ISO-8601 text or a number; undefined when unreadable. */
export function timestampMs(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * Compares by the instant, then (two texts at the same millisecond) by the text itself, so sub-millisecond
 * precision written in one format still orders correctly.
 */
function compareTimestamps(a: string | number, b: string | number): number {
  const x = timestampMs(a) ?? Number.NEGATIVE_INFINITY;
  const y = timestampMs(b) ?? Number.NEGATIVE_INFINITY;
  if (x !== y) return x < y ? -1 : 1;
  if (typeof a === 'string' && typeof b === 'string' && a.length === b.length) return a < b ? -1 : a > b ? 1 : 0;
  return 0;
}

/** Numbers and decimal strings compare as integers of any length; other strings by code unit. Null first. */
function compareIds(a: string | number | null, b: string | number | null): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? -1 : 1;
  const decimal = (v: string | number) => (typeof v === 'number' ? Number.isInteger(v) : /^-?\d{1,400}$/.test(v));
  if (decimal(a) && decimal(b)) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The larger of two positions for an ordered kind; `b` for `pageToken`. */
export function laterOf(strategy: CursorStrategy, a: CursorValue | null, b: CursorValue | null): CursorValue | null {
  if (!strategy.ordered) return b;
  return strategy.compare(a, b) >= 0 ? a : b;
}
