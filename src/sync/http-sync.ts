/**
 * `httpSync()`: incremental HTTP → database sync as a task handler. Every run claims the sync's cursor
 * row in the target database with the run's fencing token, then pulls pages from the API since the
 * cursor and commits each page's rows, rejects and new cursor in one fenced transaction.
 *
 * Guarantees:
 * - Each record fetched is upserted by key, so its effect is applied exactly once per version even
 *   though the fetch itself is at-least-once (a retry, a takeover or a replayed page fetches it again).
 * - A page commits whole or not at all; the cursor never runs ahead of the rows it covers, so a process
 *   killed mid-page loses nothing: the next owner starts at the last committed page.
 * - A paused ex-owner can never commit once a newer owner has started a run (see target.ts), whatever
 *   its clock or its `ctx.signal` say.
 * - Ordered cursors (`updatedSince`, `increasingId`) never move backwards.
 * - A record that fails the schema or `map` is stored in the rejects table with the reason and the raw
 *   record; it never fails the run and is never lost.
 * - `ctx.signal` stops the run between pages (and aborts a request or a backoff in flight); committed
 *   pages stay committed. A page is never committed after the signal has aborted.
 *
 * Non-guarantees: the source must list every change at a position after the cursor (or within
 * `lookback` of it); a record changed and then deleted in the source is not deleted in the target; rows
 * are not compared with the source (no drift repair).
 */
import { ConfigError, NotOwnerError, toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import type { TaskHandler } from '../scheduler/task.js';
import { readField, type CursorValue } from './cursor.js';
import { openDialect } from './dialects/open.js';
import { HttpClient } from './http-client.js';
import { resolveOptions, type HttpSyncOptions, type ParsedPage, type ResolvedOptions, type SyncRunSummary, type SyncStopReason } from './options.js';
import { validatorOf, type Validation } from './schema.js';
import { fingerprintOf, SyncTarget, type PreparedRow, type Reject } from './target.js';

/** What a run needs from its task context; a baton `TaskContext` has all of it. */
export interface SyncRunContext {
  /** The fencing token of the ownership under which the run happens. */
  readonly token: bigint;
  /** Stops the run between pages, and any request or backoff in flight. */
  readonly signal: AbortSignal;
  /** Names the sync when `name` is not set. */
  readonly unit?: string;
  /** Written into the cursor row with each commit, for people. */
  readonly node?: { readonly id: string };
  readonly log?: Logger;
  /** Mirrors the cursor at the end of the run, when the `checkpoint` option is on (a baton `Checkpoint`). */
  readonly checkpoint?: { commit(value: HttpSyncCheckpoint): Promise<void> };
}

/** What a sync mirrors into `ctx.checkpoint` at the end of a run (the cursor table stays the truth). */
export interface HttpSyncCheckpoint {
  readonly cursor: CursorValue | null;
  readonly token: string;
  readonly at: number;
  readonly stopped: SyncStopReason;
  readonly pages: number;
  readonly fetched: number;
  readonly upserted: number;
  readonly rejected: number;
}

/** Counters since the sync was built, for metrics (see docs/http-sync.md for a Prometheus example). */
export interface HttpSyncStats {
  readonly runs: number;
  readonly failedRuns: number;
  readonly pages: number;
  readonly fetched: number;
  readonly upserted: number;
  readonly rejected: number;
  /** Requests sent, retries included. */
  readonly requests: number;
  readonly retries: number;
  /** The last cursor this process committed or read, or null. */
  readonly cursor: CursorValue | null;
  /** `updatedSince`: now − the timestamp of `cursor`, in ms (measured when read). */
  readonly lagMs: number | undefined;
  /** Wall time of the end of the last run, in ms since the epoch. */
  readonly lastRunAt: number | undefined;
  /** The last failed run's error message. */
  readonly lastError: string | undefined;
}

/** A sync: a task handler with its counters, its schema set-up and its close. */
export interface HttpSync extends TaskHandler<HttpSyncCheckpoint> {
  /** The configured name, or undefined when it is the task's unit. */
  readonly syncName: string | undefined;
  /** A snapshot of the counters. */
  readonly stats: HttpSyncStats;
  /** Runs once with the given context (what the task handler does) and tells what happened. */
  run(ctx: SyncRunContext): Promise<SyncRunSummary>;
  /**
   * Opens the target, creates the cursor and rejects tables when missing, and checks the target table's
   * columns and its unique key. Runs by itself before the first run; call it at start-up to fail fast.
   * @throws SyncTargetError naming what is missing.
   */
  ensureSchema(): Promise<void>;
  /** Closes the target connection if the sync opened it from a URL. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Builds a sync. Every option is checked now.
 * @throws ConfigError naming the field.
 * @example
 * cluster.task('sync-orders', { every: '10s' }, httpSync({
 *   source: { url: 'https://api.example.com/orders', cursor: { kind: 'updatedSince' } },
 *   schema: Order,                        // a zod schema
 *   target: { db: 'postgres://app@db/shop', table: 'orders', key: 'id', version: 'updated_at',
 *             columns: ['id', 'customer', 'amount_cents', 'updated_at'] },
 * }));
 */
export function httpSync<R>(options: HttpSyncOptions<R>): HttpSync {
  const runner = new SyncRunner(resolveOptions(options));
  const handler = (async (ctx) => {
    await runner.run(ctx);
  }) as HttpSync;
  Object.defineProperties(handler, {
    syncName: { value: options.name, enumerable: true },
    stats: { get: () => runner.stats(), enumerable: true },
    run: { value: (ctx: SyncRunContext) => runner.run(ctx) },
    ensureSchema: { value: () => runner.ready() },
    close: { value: () => runner.close() },
  });
  return handler;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Where a page leaves the run: the cursor to commit, where the next request starts, and whether it was the last. */
interface PageOutcome {
  readonly cursor: CursorValue | null;
  readonly next: CursorValue | null;
  readonly done: boolean;
}

class SyncRunner {
  readonly #o: ResolvedOptions;
  readonly #http: HttpClient;
  readonly #validate: (record: unknown) => Promise<Validation<unknown>>;
  readonly #stats: Mutable<Omit<HttpSyncStats, 'lagMs' | 'requests'>> = {
    runs: 0,
    failedRuns: 0,
    pages: 0,
    fetched: 0,
    upserted: 0,
    rejected: 0,
    retries: 0,
    cursor: null,
    lastRunAt: undefined,
    lastError: undefined,
  };
  #target: Promise<SyncTarget> | undefined;
  #closed = false;

  constructor(options: ResolvedOptions) {
    this.#o = options;
    this.#validate = validatorOf(options.schema);
    this.#http = new HttpClient({
      clock: options.clock,
      timeoutMs: options.timeoutMs,
      attempts: options.attempts,
      backoff: options.backoff,
      maxRetryAfterMs: options.maxRetryAfterMs,
      minIntervalMs: options.minIntervalMs,
      label: options.label,
    });
  }

  stats(): HttpSyncStats {
    return { ...this.#stats, requests: this.#http.requests, lagMs: this.#o.strategy.lagMs(this.#stats.cursor, this.#o.clock.now()) };
  }

  /** Opens the target and sets up its tables, once; a failure is retried by the next call. */
  ready(): Promise<SyncTarget> {
    if (this.#closed) return Promise.reject(new ConfigError(`${this.#o.label}: closed`));
    this.#target ??= (async () => {
      const dialect = await openDialect(this.#o.db, this.#o.lockTimeoutMs, this.#o.label);
      const target = new SyncTarget(dialect, this.#o);
      try {
        await target.ensureSchema();
      } catch (error) {
        await dialect.close();
        throw error;
      }
      return target;
    })().catch((error: unknown) => {
      this.#target = undefined;
      throw error;
    });
    return this.#target;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const target = await this.#target?.catch(() => undefined);
    await target?.dialect.close();
  }

  async run(ctx: SyncRunContext): Promise<SyncRunSummary> {
    const name = this.#o.name ?? ctx.unit;
    if (name === undefined) throw new ConfigError(`${this.#o.label}: no name: set the "name" option or run it as a task (ctx.unit)`);
    const log = (ctx.log ?? silentLogger).child({ sync: name });
    try {
      const summary = await this.#run(ctx, name, log);
      this.#stats.runs++;
      this.#stats.lastRunAt = this.#o.clock.now();
      log.info({ ...summary, token: summary.token.toString() }, 'http sync: run finished');
      safely(() => this.#o.onRun?.(summary));
      return summary;
    } catch (error) {
      this.#stats.runs++;
      this.#stats.failedRuns++;
      this.#stats.lastRunAt = this.#o.clock.now();
      this.#stats.lastError = toError(error).message;
      if (error instanceof NotOwnerError) log.warn({ err: error.message }, 'http sync: fenced out by a newer owner');
      throw error;
    }
  }

  async #run(ctx: SyncRunContext, name: string, log: Logger): Promise<SyncRunSummary> {
    const { clock, strategy } = this.#o;
    const target = await this.ready();
    const started = clock.monotonic();
    const requestsBefore = this.#http.requests;
    const node = ctx.node?.id ?? null;
    const totals = { pages: 0, fetched: 0, upserted: 0, rejected: 0, retries: 0 };
    let stopped: SyncStopReason = 'max-pages';

    let committed = (await target.claim(name, ctx.token, node, clock.now())) ?? strategy.start;
    this.#stats.cursor = committed;
    let from = strategy.startOfRun(committed);
    for (let page = 1; page <= this.#o.maxPagesPerRun; page++) {
      if (ctx.signal.aborted) {
        stopped = 'aborted';
        break;
      }
      const fetched = await this.#fetchPage(ctx.signal, from, page, log, () => totals.retries++);
      if (fetched === 'aborted') {
        stopped = 'aborted';
        break;
      }
      const { records, outcome: result, attempts } = fetched;
      const { rows, rejects } = await this.#prepare(records);
      // Never commit after an abort: the signal may mean this node no longer owns the task.
      if (ctx.signal.aborted) {
        stopped = 'aborted';
        break;
      }
      const moves = strategy.ordered ? strategy.compare(result.cursor, committed) > 0 : JSON.stringify(result.cursor) !== JSON.stringify(committed);
      // An empty page that moves nothing needs no transaction.
      const changed = rows.length > 0 || rejects.length > 0 || moves;
      if (changed) committed = await target.commitPage(name, ctx.token, node, { rows, rejects, cursor: result.cursor }, clock.now());
      from = result.next;
      totals.pages++;
      totals.fetched += records.length;
      totals.upserted += rows.length;
      totals.rejected += rejects.length;
      Object.assign(this.#stats, {
        pages: this.#stats.pages + 1,
        fetched: this.#stats.fetched + records.length,
        upserted: this.#stats.upserted + rows.length,
        rejected: this.#stats.rejected + rejects.length,
        cursor: committed,
      });
      const lagMs = strategy.lagMs(committed, clock.now());
      log.debug({ page, fetched: records.length, upserted: rows.length, rejected: rejects.length, cursor: committed, lagMs, requestAttempts: attempts }, 'http sync: page committed');
      safely(() =>
        this.#o.onPage?.({ name, token: ctx.token, page, fetched: records.length, upserted: rows.length, rejected: rejects.length, cursor: committed, lagMs, attempts }),
      );
      if (result.done) {
        stopped = 'caught-up';
        break;
      }
    }

    const summary: SyncRunSummary = {
      name,
      token: ctx.token,
      stopped,
      ...totals,
      requests: this.#http.requests - requestsBefore,
      cursor: committed,
      lagMs: strategy.lagMs(committed, clock.now()),
      durationMs: Math.round(clock.monotonic() - started),
    };
    if (this.#o.checkpoint && ctx.checkpoint && stopped !== 'aborted') {
      await ctx.checkpoint.commit({
        cursor: committed,
        token: ctx.token.toString(),
        at: clock.now(),
        stopped,
        pages: totals.pages,
        fetched: totals.fetched,
        upserted: totals.upserted,
        rejected: totals.rejected,
      });
    }
    return summary;
  }

  /**
   * Fetches and reads the page starting at `from`, retrying as the HTTP client does (and also when a full
   * page does not move past `from`). Returns 'aborted' when `signal` aborted meanwhile.
   */
  async #fetchPage(
    signal: AbortSignal,
    from: CursorValue | null,
    page: number,
    log: Logger,
    countRetry: () => void,
  ): Promise<{ records: readonly unknown[]; outcome: PageOutcome; attempts: number } | 'aborted'> {
    const { strategy, pageSize } = this.#o;
    let parsed: ParsedPage | undefined;
    let outcome: PageOutcome | undefined;
    try {
      const request = await this.#request(from, page === 1);
      const fetched = await this.#http.fetchJson({
        ...request,
        signal,
        check: (body) => {
          parsed = this.#o.parse(body);
          outcome = this.#outcome(from, parsed);
          // A full page that does not move past where it started would be asked for again and again.
          const stuck = strategy.ordered && parsed.records.length >= pageSize && strategy.compare(outcome.next, from) <= 0;
          return stuck
            ? `a full page of ${parsed.records.length} records did not advance past ${JSON.stringify(from)} (a stale replay, or more than pageSize records at one cursor value)`
            : undefined;
        },
        onRetry: (info) => {
          countRetry();
          this.#stats.retries++;
          log.warn({ page, requestAttempt: info.attempt, reason: info.reason, status: info.status, delayMs: info.delayMs }, 'http sync: retrying a request');
        },
      });
      return { records: (parsed as ParsedPage).records, outcome: outcome as PageOutcome, attempts: fetched.attempts };
    } catch (error) {
      if (signal.aborted) return 'aborted';
      throw error;
    }
  }

  /** The URL and headers of the request starting at `from`. */
  async #request(from: CursorValue | null, firstOfRun: boolean): Promise<{ url: URL; headers: Readonly<Record<string, string>> }> {
    const { strategy, pageSize, pageSizeParam, url } = this.#o;
    const params = { ...strategy.params(from), ...(pageSizeParam ? { [pageSizeParam]: String(pageSize) } : {}) };
    const built = this.#o.request({ url: new URL(url), cursor: from, params, pageSize, firstOfRun });
    return { url: built.url, headers: { ...(await this.#o.headers()), ...built.headers } };
  }

  /** Where a page takes the run. Ordered kinds: the largest position in it; `pageToken`: its next token. */
  #outcome(from: CursorValue | null, page: ParsedPage): PageOutcome {
    const { strategy, pageSize } = this.#o;
    if (!strategy.ordered) {
      const next = typeof page.next === 'string' && page.next !== '' ? { token: page.next } : null;
      const same = next !== null && from !== null && (from as { token: string }).token === next.token;
      // At the end the token that fetched the last page is kept: the next run asks for it again.
      return { cursor: next ?? from, next: next ?? from, done: next === null || same || page.done === true };
    }
    let max: CursorValue | null = null;
    for (const record of page.records) {
      const position = strategy.positionOf(record);
      if (position !== undefined && strategy.compare(position, max) > 0) max = position;
    }
    const next = strategy.compare(max, from) > 0 ? max : from;
    return { cursor: max, next, done: page.done === true || page.records.length < pageSize };
  }

  /** Validates and maps a page's records; duplicates of one key keep the newest copy. */
  async #prepare(records: readonly unknown[]): Promise<{ rows: PreparedRow[]; rejects: Reject[] }> {
    const { columns, key, version, strategy, map } = this.#o;
    const dialect = (await this.ready()).dialect;
    const byKey = new Map<string, { row: Readonly<Record<string, unknown>>; position: CursorValue | undefined }>();
    const rejects = new Map<string, Reject>();
    const reject = (raw: unknown, reason: string) => {
      const text = safeJson(raw);
      const fingerprint = fingerprintOf(text);
      const id = readField(raw, strategy.idField);
      const recordKey = typeof id === 'string' || typeof id === 'number' ? String(id).slice(0, 255) : null;
      rejects.set(fingerprint, { fingerprint, recordKey, reason: reason.slice(0, 2000), raw: text });
    };
    for (const raw of records) {
      const checked = await this.#validate(raw);
      if (!checked.ok) {
        reject(raw, `schema: ${checked.reason}`);
        continue;
      }
      let row: Readonly<Record<string, unknown>>;
      try {
        row = map(checked.value);
      } catch (error) {
        reject(raw, `map threw: ${toError(error).message}`);
        continue;
      }
      const problem = rowProblem(row, columns, key);
      if (problem) {
        reject(raw, `map: ${problem}`);
        continue;
      }
      const id = JSON.stringify(key.map((k) => String(row[k])));
      const position = strategy.positionOf(raw);
      const held = byKey.get(id);
      if (!held || isNewer({ row, position }, held, version, strategy)) byKey.set(id, { row, position });
    }
    const rows = [...byKey.values()].map(({ row }) => columns.map((c) => dialect.value(row[c])));
    return { rows, rejects: [...rejects.values()] };
  }
}

/** Why a mapped row cannot be written, or undefined. */
function rowProblem(row: unknown, columns: readonly string[], key: readonly string[]): string | undefined {
  if (typeof row !== 'object' || row === null || Array.isArray(row)) return `expected an object of column values, got ${typeof row}`;
  for (const [column, value] of Object.entries(row)) {
    if (!columns.includes(column)) return `column "${column}" is not in target.columns`;
    if (typeof value === 'number' && !Number.isFinite(value)) return `column "${column}" is ${value}`;
    if (typeof value === 'function' || typeof value === 'symbol') return `column "${column}" holds a ${typeof value}`;
  }
  for (const k of key) {
    const value = (row as Record<string, unknown>)[k];
    if (value === undefined || value === null) return `key column "${k}" is empty`;
  }
  return undefined;
}

/** Whether `a` is a newer copy of a row than `b`: by `version`, then by cursor position, else the later one. */
function isNewer(
  a: { row: Readonly<Record<string, unknown>>; position: CursorValue | undefined },
  b: { row: Readonly<Record<string, unknown>>; position: CursorValue | undefined },
  version: string | undefined,
  strategy: ResolvedOptions['strategy'],
): boolean {
  if (version !== undefined) {
    const x = a.row[version];
    const y = b.row[version];
    if (x !== y && x !== undefined && y !== undefined && x !== null && y !== null) {
      return typeof x === 'number' && typeof y === 'number' ? x > y : String(x) > String(y);
    }
  }
  if (strategy.ordered && a.position !== undefined && b.position !== undefined) return strategy.compare(a.position, b.position) >= 0;
  return true;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // A throwing listener must not fail a run whose page is already committed.
  }
}
