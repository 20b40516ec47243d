/**
 * The options of {@link httpSync}, their defaults, and their validation: everything is checked when the
 * sync is built, and a bad value raises a ConfigError naming the field (`http sync "orders":
 * source.pageSize must be an integer from 1 to 10000, got 0`).
 */
import { systemClock, type Clock } from '../core/clock.js';
import { parseDuration, type Duration } from '../core/duration.js';
import { ConfigError } from '../core/errors.js';
import { parseSqlUrl, type SqlUrl } from '../sql/url.js';
import { cursorStrategy, type CursorOptions, type CursorStrategy, type CursorValue } from './cursor.js';
import { assertIdentifier } from './dialects/dialect.js';
import { isRecordSchema, type RecordSchema } from './schema.js';
import { ShapeError } from './http-client.js';

/**
 * Where the rows go: a URL (`postgres://…`, `mysql://…` / `mariadb://…`, `sqlite:PATH`, with the
 * connection options of docs/database-urls.md — checked when the sync is built, unknown options refused),
 * opened with a small pool of its own (closed by `close()`), or a handle you already have (left open by
 * `close()`).
 */
export type TargetDatabase =
  | string
  | { readonly postgres: PostgresPoolHandle }
  | { readonly mysql: MysqlPoolHandle }
  | { readonly sqlite: SqliteDatabaseHandle };

// The handles are typed by shape, not by the drivers' own types: the drivers are optional peer
// dependencies, and these declarations must compile for a user who installed only one of them.
/** A `Pool` of `pg`. */
export interface PostgresPoolHandle {
  connect(): Promise<unknown>;
  end(): Promise<void>;
}
/** A `Pool` of `mysql2/promise`. */
export interface MysqlPoolHandle {
  getConnection(): Promise<unknown>;
  end(): Promise<void>;
}
/** A `Database` of `better-sqlite3`. */
export interface SqliteDatabaseHandle {
  prepare(source: string): unknown;
  exec(source: string): unknown;
  close(): unknown;
}

/** What a request is built from; see {@link HttpSourceOptions.request}. */
export interface SyncRequestInput {
  /** A copy of `source.url`. */
  readonly url: URL;
  /** Where this request starts: the cursor, a position reached in this run, or null from the start. */
  readonly cursor: CursorValue | null;
  /** The default query parameters for `cursor`, the page size included. */
  readonly params: Readonly<Record<string, string>>;
  readonly pageSize: number;
  /** True for the first request of a run. */
  readonly firstOfRun: boolean;
}

/** One page as {@link HttpSourceOptions.parse} reads it from a response body. */
export interface ParsedPage {
  readonly records: readonly unknown[];
  /** `pageToken` cursors: the token of the next page; absent, null or empty at the end. Ignored otherwise. */
  readonly next?: string | null;
  /** True when the source says there is nothing more for now (e.g. `has_more: false`). */
  readonly done?: boolean;
}

export interface HttpSourceOptions {
  /** The endpoint, `http:` or `https:`. Its own query parameters are kept; the cursor's are added. */
  readonly url: string | URL;
  readonly cursor: CursorOptions;
  /**
   * Records asked for per page. Default 100, from 1 to 10000. A page with fewer records ends the run
   * (caught up), so set it to the API's own page size when the API ignores the parameter.
   */
  readonly pageSize?: number;
  /** Query parameter carrying the page size; null to send none. Default `limit`. */
  readonly pageSizeParam?: string | null;
  /**
   * Pages fetched at most per run. Default 100. Bounds a run's length (a run holds the task, and a new
   * deploy waits for it); too small and a large backlog takes many ticks to drain.
   */
  readonly maxPagesPerRun?: number;
  /**
   * One attempt, headers and body, measured on the injected clock. Default `10s`. Too short: a slow but
   * healthy API is retried forever; too long: a hung connection holds the run.
   */
  readonly timeout?: Duration;
  /** Attempts per page, the first included. Default 5, from 1 to 100. */
  readonly attempts?: number;
  /** Exponential backoff with equal jitter between attempts (core/backoff.ts): default `{ initial: '200ms', max: '10s' }`. */
  readonly backoff?: { readonly initial?: Duration; readonly max?: Duration };
  /** `Retry-After` (on 429 and 503) is obeyed up to this. Default `60s`. */
  readonly maxRetryAfter?: Duration;
  /** Rate limit: the least time between the starts of two requests, retries included. Default 0. */
  readonly minInterval?: Duration;
  /** Extra request headers, or a function giving them before each request (for a token that expires). */
  readonly headers?: Readonly<Record<string, string>> | (() => Readonly<Record<string, string>> | Promise<Readonly<Record<string, string>>>);
  /**
   * Builds a request; default: `url` with `params` set as query parameters. Return a URL, or a URL and
   * headers (added to `headers`).
   */
  readonly request?: (input: SyncRequestInput) => string | URL | { readonly url: string | URL; readonly headers?: Readonly<Record<string, string>> };
  /**
   * Reads a page from the parsed JSON body. Default: a top-level array, or an object with an array in
   * `records`, `data`, `items` or `results`, and `next`, `next_page_token` or `nextPageToken` for the
   * next token, `has_more: false` for done. Throwing fails the run without a retry.
   */
  readonly parse?: (body: unknown) => ParsedPage;
}

export interface HttpTargetOptions<R> {
  readonly db: TargetDatabase;
  /** Your table (`orders` or `schema.orders`); it must exist, with a unique key on `key`. */
  readonly table: string;
  /** The column(s) identifying a row; a page's rows are upserted by them. */
  readonly key: string | readonly string[];
  /** Every column `map` may write, the key included. */
  readonly columns: readonly string[];
  /** Record → row (column → value). Default: each of `columns` read from the record's field of that name. */
  readonly map?: (record: R) => Readonly<Record<string, unknown>>;
  /**
   * A column that grows with each change of a row (its `updated_at`, a version number): an upsert then
   * never replaces a row with an older copy of it, which a replayed or out-of-order page may carry.
   * Compared with SQL `<=`, so a number or timestamp column, or ISO-8601 text all in one format.
   * Strongly advised; without it the last copy fetched wins.
   */
  readonly version?: string;
  /** Default `baton_sync_cursor`; created by `ensureSchema()` (one row per sync name). */
  readonly cursorTable?: string;
  /** Default `baton_sync_rejects`; created by `ensureSchema()`. */
  readonly rejectsTable?: string;
  /**
   * The longest wait for a row lock held by another writer (a paused ex-owner mid-commit), then the page
   * fails. Default `2s`. On SQLite it is the busy timeout of a handle opened from a URL, and the wait
   * blocks the event loop: keep it well under the session TTL.
   */
  readonly lockTimeout?: Duration;
}

/** What each committed page reports to `onPage`. */
export interface SyncPageEvent {
  readonly name: string;
  readonly token: bigint;
  /** 1 for the first page of the run. */
  readonly page: number;
  readonly fetched: number;
  readonly upserted: number;
  readonly rejected: number;
  /** The cursor committed with the page (the stored maximum for ordered kinds). */
  readonly cursor: CursorValue | null;
  /** `updatedSince`: now − the cursor's timestamp, in ms. */
  readonly lagMs: number | undefined;
  /** Attempts this page took (1 without retries). */
  readonly attempts: number;
}

/** Why a run ended without an error. */
export type SyncStopReason = 'caught-up' | 'max-pages' | 'aborted';

/** What a run did; returned by `run()`, passed to `onRun`, logged at info level. */
export interface SyncRunSummary {
  readonly name: string;
  readonly token: bigint;
  readonly stopped: SyncStopReason;
  readonly pages: number;
  readonly fetched: number;
  readonly upserted: number;
  readonly rejected: number;
  /** Requests sent, retries included. */
  readonly requests: number;
  readonly retries: number;
  /** The committed cursor at the end of the run. */
  readonly cursor: CursorValue | null;
  readonly lagMs: number | undefined;
  readonly durationMs: number;
}

export interface HttpSyncOptions<R = unknown> {
  /**
   * The sync's name: the key of its row in the cursor table. Default: the task's unit name (`ctx.unit`).
   * One name belongs to one task of one cluster: tokens of different tasks or clusters do not compare.
   */
  readonly name?: string;
  readonly source: HttpSourceOptions;
  /** Validates each record (a zod schema, or any Standard Schema v1). A record that fails goes to the rejects table. */
  readonly schema: RecordSchema<R>;
  readonly target: HttpTargetOptions<R>;
  /** Mirror the cursor and the run's counts into `ctx.checkpoint` at the end of each run (for status). Default true. */
  readonly checkpoint?: boolean;
  /** Timers (timeouts, backoff, rate limit) and timestamps. Default: the system clock. */
  readonly clock?: Clock;
  /** Called after each committed page. A throwing listener is ignored. */
  readonly onPage?: (event: SyncPageEvent) => void;
  /** Called after each run that ended without an error. A throwing listener is ignored. */
  readonly onRun?: (summary: SyncRunSummary) => void;
}

/** Options after validation, with defaults filled in. */
export interface ResolvedOptions {
  readonly name: string | undefined;
  readonly label: string;
  readonly url: URL;
  readonly strategy: CursorStrategy;
  readonly pageSize: number;
  readonly pageSizeParam: string | null;
  readonly maxPagesPerRun: number;
  readonly timeoutMs: number;
  readonly attempts: number;
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
  readonly maxRetryAfterMs: number;
  readonly minIntervalMs: number;
  readonly headers: () => Promise<Readonly<Record<string, string>>>;
  readonly request: (input: SyncRequestInput) => { url: URL; headers: Readonly<Record<string, string>> };
  readonly parse: (body: unknown) => ParsedPage;
  readonly schema: RecordSchema<unknown>;
  readonly db: ResolvedDatabase;
  readonly table: string;
  readonly key: readonly string[];
  readonly columns: readonly string[];
  readonly map: (record: unknown) => Readonly<Record<string, unknown>>;
  readonly version: string | undefined;
  readonly cursorTable: string;
  readonly rejectsTable: string;
  readonly lockTimeoutMs: number;
  readonly checkpoint: boolean;
  readonly clock: Clock;
  readonly onPage: ((event: SyncPageEvent) => void) | undefined;
  readonly onRun: ((summary: SyncRunSummary) => void) | undefined;
}

const NAME = /^[\w.:@#/-]{1,191}$/;
const PARAM = /^[\w.\-[\]]{1,128}$/;

/** Validates every option. @throws ConfigError naming the field and the value. */
export function resolveOptions(options: unknown): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new ConfigError(`http sync: options must be an object, got ${JSON.stringify(options)}`);
  const o = options as HttpSyncOptions;
  if (o.name !== undefined && (typeof o.name !== 'string' || !NAME.test(o.name))) {
    throw new ConfigError(`http sync: name must be 1 to 191 letters, digits or "_.:@#/-", got ${JSON.stringify(o.name)}`);
  }
  const label = `http sync${o.name ? ` "${o.name}"` : ''}`;
  const fail = (field: string, what: string, value: unknown): never => {
    throw new ConfigError(`${label}: ${field} ${what}, got ${describeValue(value)}`);
  };
  knownKeys(o, ['name', 'source', 'schema', 'target', 'checkpoint', 'clock', 'onPage', 'onRun'], label, '');
  const source = o.source as HttpSourceOptions | undefined;
  if (typeof source !== 'object' || source === null) fail('source', 'must be an object such as { url, cursor }', source);
  const s = source as HttpSourceOptions;
  knownKeys(s, ['url', 'cursor', 'pageSize', 'pageSizeParam', 'maxPagesPerRun', 'timeout', 'attempts', 'backoff', 'maxRetryAfter', 'minInterval', 'headers', 'request', 'parse'], label, 'source.');
  const target = o.target as HttpTargetOptions<unknown> | undefined;
  if (typeof target !== 'object' || target === null) fail('target', 'must be an object such as { db, table, key, columns }', target);
  const t = target as HttpTargetOptions<unknown>;
  knownKeys(t, ['db', 'table', 'key', 'columns', 'map', 'version', 'cursorTable', 'rejectsTable', 'lockTimeout'], label, 'target.');

  let url: URL;
  try {
    url = new URL(String(s.url));
  } catch {
    return fail('source.url', 'must be an absolute http: or https: URL', s.url);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail('source.url', 'must use http: or https:', `${url.protocol}…`);
  const strategy = cursorStrategy(s.cursor, label);
  const integer = (field: string, value: unknown, fallback: number, min: number, max: number): number => {
    const v = value ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(field, `must be an integer from ${min} to ${max}`, value);
    return v as number;
  };
  const duration = (field: string, value: unknown, fallback: number, min: number, max: number): number => {
    const ms = value === undefined ? fallback : parseDurationAsConfig(value, `${label}: ${field}`);
    if (ms < min || ms > max) fail(field, `must be from ${min} ms to ${max} ms`, value);
    return ms;
  };
  const pageSize = integer('source.pageSize', s.pageSize, 100, 1, 10_000);
  const pageSizeParam = s.pageSizeParam === undefined ? 'limit' : s.pageSizeParam;
  if (pageSizeParam !== null && (typeof pageSizeParam !== 'string' || !PARAM.test(pageSizeParam))) {
    fail('source.pageSizeParam', `must be null or a query parameter name matching ${PARAM}`, s.pageSizeParam);
  }
  const maxPagesPerRun = integer('source.maxPagesPerRun', s.maxPagesPerRun, 100, 1, 1_000_000);
  const timeoutMs = duration('source.timeout', s.timeout, 10_000, 1, 600_000);
  const attempts = integer('source.attempts', s.attempts, 5, 1, 100);
  if (s.backoff !== undefined && (typeof s.backoff !== 'object' || s.backoff === null)) fail('source.backoff', 'must be an object { initial, max }', s.backoff);
  const initialMs = duration('source.backoff.initial', s.backoff?.initial, 200, 1, 3_600_000);
  const maxMs = duration('source.backoff.max', s.backoff?.max, Math.max(10_000, initialMs), 1, 3_600_000);
  if (initialMs > maxMs) {
    throw new ConfigError(`${label}: source.backoff.initial (${initialMs} ms) must not exceed source.backoff.max (${maxMs} ms)`);
  }
  const maxRetryAfterMs = duration('source.maxRetryAfter', s.maxRetryAfter, 60_000, 0, 3_600_000);
  const minIntervalMs = duration('source.minInterval', s.minInterval, 0, 0, 3_600_000);
  for (const field of ['request', 'parse'] as const) {
    if (s[field] !== undefined && typeof s[field] !== 'function') fail(`source.${field}`, 'must be a function', s[field]);
  }
  const headers = resolveHeaders(s.headers, label);

  if (!isRecordSchema(o.schema)) fail('schema', 'must be a zod schema (or any Standard Schema v1, or an object with safeParse)', o.schema);
  const db = resolveDatabase(t.db, label);
  const table = assertIdentifier(t.table, `${label}: target.table`, { qualified: true });
  if (!Array.isArray(t.columns) || t.columns.length === 0) fail('target.columns', 'must be a non-empty array of column names', t.columns);
  const columns = t.columns.map((c, i) => assertIdentifier(c, `${label}: target.columns[${i}]`));
  const duplicate = columns.find((c, i) => columns.indexOf(c) !== i);
  if (duplicate) fail('target.columns', `must not name a column twice ("${duplicate}")`, t.columns);
  const keyList = typeof t.key === 'string' ? [t.key] : t.key;
  if (!Array.isArray(keyList) || keyList.length === 0) fail('target.key', 'must be a column name or a non-empty array of them', t.key);
  const key = (keyList as unknown[]).map((k, i) => assertIdentifier(k, `${label}: target.key${typeof t.key === 'string' ? '' : `[${i}]`}`));
  for (const k of key) if (!columns.includes(k)) fail('target.key', `must be among target.columns (missing "${k}")`, t.key);
  let version: string | undefined;
  if (t.version !== undefined) {
    version = assertIdentifier(t.version, `${label}: target.version`);
    if (!columns.includes(version)) fail('target.version', 'must be among target.columns', t.version);
    if (key.includes(version)) fail('target.version', 'must not be a key column', t.version);
  }
  if (t.map !== undefined && typeof t.map !== 'function') fail('target.map', 'must be a function', t.map);
  const map = (t.map as ((record: unknown) => Readonly<Record<string, unknown>>) | undefined) ?? pickColumns(columns);
  const cursorTable = assertIdentifier(t.cursorTable ?? 'baton_sync_cursor', `${label}: target.cursorTable`, { qualified: true });
  const rejectsTable = assertIdentifier(t.rejectsTable ?? 'baton_sync_rejects', `${label}: target.rejectsTable`, { qualified: true });
  if (new Set([table, cursorTable, rejectsTable]).size !== 3) {
    throw new ConfigError(`${label}: target.table, target.cursorTable and target.rejectsTable must be three different tables, got ${JSON.stringify([table, cursorTable, rejectsTable])}`);
  }
  const lockTimeoutMs = duration('target.lockTimeout', t.lockTimeout, 2000, 1, 600_000);
  if (o.checkpoint !== undefined && typeof o.checkpoint !== 'boolean') fail('checkpoint', 'must be true or false', o.checkpoint);
  for (const field of ['onPage', 'onRun'] as const) {
    if (o[field] !== undefined && typeof o[field] !== 'function') fail(field, 'must be a function', o[field]);
  }
  const request = s.request;
  return {
    name: o.name,
    label,
    url,
    strategy,
    pageSize,
    pageSizeParam: pageSizeParam as string | null,
    maxPagesPerRun,
    timeoutMs,
    attempts,
    backoff: { initialMs, maxMs },
    maxRetryAfterMs,
    minIntervalMs,
    headers,
    request: request ? customRequest(request, label) : defaultRequest,
    parse: s.parse ? checkedParse(s.parse, label) : defaultParse,
    schema: o.schema,
    db,
    table,
    key,
    columns,
    map,
    version,
    cursorTable,
    rejectsTable,
    lockTimeoutMs,
    checkpoint: o.checkpoint ?? true,
    clock: o.clock ?? systemClock,
    onPage: o.onPage,
    onRun: o.onRun,
  };
}

function knownKeys(object: object, known: readonly string[], label: string, prefix: string): void {
  const unknown = Object.keys(object).filter((k) => !known.includes(k));
  if (unknown.length > 0) {
    throw new ConfigError(`${label}: unknown option ${unknown.map((k) => `${prefix}${k}`).join(', ')} (known: ${known.map((k) => `${prefix}${k}`).join(', ')})`);
  }
}

function parseDurationAsConfig(value: unknown, field: string): number {
  try {
    return parseDuration(value, field);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
}

function resolveHeaders(headers: HttpSourceOptions['headers'], label: string): () => Promise<Readonly<Record<string, string>>> {
  if (headers === undefined) return async () => ({});
  if (typeof headers === 'function') return async () => checkHeaders(await headers(), label);
  const fixed = checkHeaders(headers, label);
  return async () => fixed;
}

function checkHeaders(headers: unknown, label: string): Readonly<Record<string, string>> {
  if (typeof headers !== 'object' || headers === null || Object.values(headers).some((v) => typeof v !== 'string')) {
    throw new ConfigError(`${label}: source.headers must be an object of strings (or a function returning one)`);
  }
  return headers as Readonly<Record<string, string>>;
}

/** A URL parsed (and checked) now, or the caller's handle. */
export type ResolvedDatabase = SqlUrl | Exclude<TargetDatabase, string>;

function resolveDatabase(db: unknown, label: string): ResolvedDatabase {
  if (typeof db === 'string') {
    return parseSqlUrl(db, { label: `${label}: target.db`, error: ConfigError });
  }
  if (typeof db === 'object' && db !== null) {
    const handle = db as Record<string, unknown>;
    const keys = Object.keys(handle);
    if (keys.length === 1 && ['postgres', 'mysql', 'sqlite'].includes(keys[0] as string) && typeof handle[keys[0] as string] === 'object' && handle[keys[0] as string] !== null) {
      return db as Exclude<TargetDatabase, string>;
    }
  }
  throw new ConfigError(`${label}: target.db must be a URL or one of { postgres: pg.Pool }, { mysql: mysql2 promise Pool }, { sqlite: better-sqlite3 Database }, got ${describeValue(db)}`);
}

function pickColumns(columns: readonly string[]): (record: unknown) => Readonly<Record<string, unknown>> {
  return (record) => {
    const row: Record<string, unknown> = {};
    for (const column of columns) row[column] = (record as Record<string, unknown>)[column];
    return row;
  };
}

function defaultRequest(input: SyncRequestInput): { url: URL; headers: Readonly<Record<string, string>> } {
  const url = new URL(input.url);
  for (const [key, value] of Object.entries(input.params)) url.searchParams.set(key, value);
  return { url, headers: {} };
}

function customRequest(request: NonNullable<HttpSourceOptions['request']>, label: string) {
  return (input: SyncRequestInput): { url: URL; headers: Readonly<Record<string, string>> } => {
    const result = request(input);
    const target = typeof result === 'string' || result instanceof URL ? { url: result } : result;
    let url: URL;
    try {
      url = new URL(String(target.url));
    } catch {
      throw new ConfigError(`${label}: source.request returned ${JSON.stringify(String(target.url))}, not an absolute URL`);
    }
    return { url, headers: target.headers === undefined ? {} : checkHeaders(target.headers, label) };
  };
}

/** Default reader of a page: see {@link HttpSourceOptions.parse}. @throws ShapeError. */
export function defaultParse(body: unknown): ParsedPage {
  if (Array.isArray(body)) return { records: body };
  if (typeof body === 'object' && body !== null) {
    const b = body as Record<string, unknown>;
    const records = [b.records, b.data, b.items, b.results].find(Array.isArray) as unknown[] | undefined;
    if (records) {
      const next = [b.next, b.next_page_token, b.nextPageToken].find((v) => typeof v === 'string' || v === null) as string | null | undefined;
      return { records, ...(next !== undefined ? { next } : {}), ...(b.has_more === false ? { done: true } : {}) };
    }
  }
  throw new ShapeError('the body is not a page: expected a JSON array of records, or an object with an array in "records", "data", "items" or "results"');
}

function checkedParse(parse: (body: unknown) => ParsedPage, label: string): (body: unknown) => ParsedPage {
  return (body) => {
    let page: ParsedPage;
    try {
      page = parse(body);
    } catch (error) {
      throw new ShapeError(`source.parse threw: ${(error as Error).message}`);
    }
    if (typeof page !== 'object' || page === null || !Array.isArray(page.records)) {
      throw new ShapeError(`${label}: source.parse must return { records: [...] }, got ${describeValue(page)}`);
    }
    if (page.next !== undefined && page.next !== null && typeof page.next !== 'string') {
      throw new ShapeError(`${label}: source.parse returned a next token that is not a string: ${describeValue(page.next)}`);
    }
    return page;
  };
}

function describeValue(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text.length > 80 ? `${text.slice(0, 80)}…` : text;
  } catch {
    return typeof value;
  }
}
