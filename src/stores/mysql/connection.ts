/**
 * The one server connection of a MySQL store handle, reconnecting by itself.
 *
 * Guarantees: calls are serialised (a transaction never interleaves with another call on the same
 * connection, which is what keeps `CONNECTION_ID()` and `LAST_INSERT_ID()` meaningful); a call made
 * while the connection is down, or that outlives `queryTimeoutMs`, rejects with StoreUnavailableError;
 * a lost connection is replaced in the background with jittered exponential backoff, and listeners hear
 * of each reconnection. Driver errors never escape as unhandled 'error' events or rejections.
 * Non-guarantees: a write whose connection drops before the reply may or may not have committed; the
 * caller sees StoreUnavailableError either way and re-reads.
 */
import type * as Mysql from 'mysql2/promise';
import { Backoff } from '../../core/backoff.js';
import { sleep, type Clock } from '../../core/clock.js';
import { BatonError, StoreUnavailableError } from '../../core/errors.js';
import type { MysqlDriver } from '../../sql/drivers.js';
import { classifySqlError, toSqlError } from '../../sql/errors.js';
import { connectionIdentity, holdConnectionLock, sessionSettings, type CrashView, type Sql } from './statements.js';

export interface ConnectionSettings {
  /** Host, port, credentials, database, TLS: passed to mysql2 as they are. */
  readonly connect: Mysql.ConnectionOptions;
  /** The store URL with its password redacted, for messages. */
  readonly shown: string;
  readonly clock: Clock;
  readonly queryTimeoutMs: number;
  readonly lockWaitTimeoutS: number;
  readonly crashDetection: boolean;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
}

/** Runs one statement (or a `;`-separated batch, whose result is an array) on the connection. */
export type Run = <R = unknown>(statement: Sql | string) => Promise<R>;

const DEADLOCK_RETRIES = 6;

/** A duplicate key (ER_DUP_ENTRY): a concurrent insert of the same key won. */
export function isDuplicate(error: unknown): boolean {
  return classifySqlError('mysql', error).duplicate;
}

/** A deadlock (ER_LOCK_DEADLOCK): InnoDB rolled the whole transaction back. */
export function isDeadlock(error: unknown): boolean {
  return classifySqlError('mysql', error).rolledBack;
}

type State = 'connected' | 'reconnecting' | 'closed';

export class MysqlConnection {
  readonly #driver: MysqlDriver;
  readonly #settings: ConnectionSettings;
  readonly #backoff: Backoff;
  readonly #reconnectListeners = new Set<() => void>();
  readonly #lostListeners = new Set<() => void>();
  #connection: Mysql.Connection | undefined;
  #view: CrashView;
  #state: State = 'connected';
  #lastError: Error | undefined;
  #tail: Promise<unknown> = Promise.resolve();
  #cancelReconnect: (() => void) | undefined;
  #connecting: Promise<void> | undefined;
  readonly #inflight = new Set<{ connection: Mysql.Connection; abandon: (error: Error) => void }>();

  private constructor(driver: MysqlDriver, settings: ConnectionSettings) {
    this.#driver = driver;
    this.#settings = settings;
    this.#backoff = new Backoff({ initialMs: settings.reconnectMinMs, maxMs: settings.reconnectMaxMs });
    this.#view = { enabled: false, serverName: '', serverBoot: 0, seesAllConnections: false, connId: 0 };
  }

  /** Connects once. @throws the driver's error when the server cannot be reached or refuses. */
  static async open(driver: MysqlDriver, settings: ConnectionSettings): Promise<MysqlConnection> {
    const instance = new MysqlConnection(driver, settings);
    const { connection, view } = await connectOnce(driver, settings, (c, e) => instance.#lost(c, e));
    instance.#connection = connection;
    instance.#view = view;
    return instance;
  }

  /** How this connection judges other sessions' connections (and binds its own). */
  get view(): CrashView {
    return this.#view;
  }

  get connected(): boolean {
    return this.#connection !== undefined;
  }

  /** Calls `listener` whenever an established connection is lost (not on close()). */
  onLost(listener: () => void): () => void {
    this.#lostListeners.add(listener);
    return () => this.#lostListeners.delete(listener);
  }

  /** Calls `listener` after every reconnection (not after the first connect). */
  onReconnect(listener: () => void): () => void {
    this.#reconnectListeners.add(listener);
    return () => this.#reconnectListeners.delete(listener);
  }

  /**
   * Runs `fn` with the connection to itself. Errors other than BatonErrors become StoreUnavailableError;
   * `fn` handles the driver errors it expects (ER_DUP_ENTRY) itself.
   */
  exclusive<T>(what: string, fn: (run: Run) => Promise<T>): Promise<T> {
    const result = this.#tail.then(() => this.#withConnection(what, fn));
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /**
   * Runs `fn` inside START TRANSACTION … COMMIT, rolled back when it throws. A deadlock (InnoDB already
   * rolled the transaction back) is retried a few times after a short random pause: concurrent
   * acquisitions of one new key deadlock on gap locks by design, and one of them always goes through.
   * `retryOn` widens what is retried (after a rollback).
   */
  transaction<T>(what: string, fn: (run: Run) => Promise<T>, retryOn: (error: unknown) => boolean = isDeadlock): Promise<T> {
    return this.exclusive(what, (run) =>
      this.#retried(run, retryOn, async () => {
        await run('START TRANSACTION');
        const result = await fn(run);
        await run('COMMIT');
        return result;
      }),
    );
  }

  /**
   * Runs `statement` (one statement or a `;`-separated batch) as one transaction in ONE round trip:
   * `START TRANSACTION; …; COMMIT` leave in one packet, so the transaction costs one trip and one commit.
   * Returns the batch's results without those of START TRANSACTION and COMMIT. The server stops a batch
   * at its first error, before COMMIT: the transaction is then rolled back (one more trip, on errors only)
   * and retried as in {@link transaction}.
   */
  transactionInOneTrip<R extends unknown[]>(what: string, statement: Sql, retryOn: (error: unknown) => boolean = isDeadlock): Promise<R> {
    const wrapped: Sql = { sql: `START TRANSACTION;\n${statement.sql};\nCOMMIT`, values: statement.values };
    return this.exclusive(what, (run) => this.#retried(run, retryOn, async () => (await run<unknown[]>(wrapped)).slice(1, -1) as R));
  }

  async #retried<T>(run: Run, retryOn: (error: unknown) => boolean, attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (error) {
        if (this.#connection) await run('ROLLBACK').catch(() => undefined);
        if (!retryOn(error) || n >= DEADLOCK_RETRIES) throw error;
        await sleep(this.#settings.clock, 2 + Math.random() * 10 * n);
      }
    }
  }

  /**
   * Ends the connection and stops reconnecting; resolves when nothing is left running. `abandon`: a call
   * in flight (a wait that may block for seconds) fails at once instead of being awaited.
   */
  async close(options: { abandon?: boolean } = {}): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#cancelReconnect?.();
    this.#cancelReconnect = undefined;
    if (options.abandon && this.#connection) this.#lost(this.#connection, new Error('the handle is closing'));
    await this.#tail;
    await this.#connecting;
    const connection = this.#connection;
    this.#connection = undefined;
    if (connection) {
      try {
        await raceTimeout(connection.end(), this.#settings.clock, 1000);
      } catch {
        // The server is gone or slow: closing the socket is all that is left to do.
      } finally {
        connection.destroy();
      }
    }
  }

  async #withConnection<T>(what: string, fn: (run: Run) => Promise<T>): Promise<T> {
    const prefix = `mysql store ${this.#settings.shown}: ${what}`;
    if (this.#state === 'closed') throw new StoreUnavailableError(`${prefix}: the handle is closed`);
    const connection = this.#connection;
    if (!connection) {
      throw new StoreUnavailableError(
        `${prefix}: not connected (${this.#lastError?.message ?? 'connection lost'}); reconnecting in the background`,
        { cause: this.#lastError },
      );
    }
    try {
      return await fn((statement) => this.#query(connection, statement));
    } catch (error) {
      if (error instanceof BatonError) throw error;
      throw new StoreUnavailableError(toSqlError('mysql', prefix, error).message, { cause: error });
    }
  }

  async #query<R>(connection: Mysql.Connection, statement: Sql | string): Promise<R> {
    const { sql, values } = typeof statement === 'string' ? { sql: statement, values: [] } : statement;
    const query = connection.query({ sql, values: values as unknown[] });
    query.catch(() => undefined); // once abandoned (timeout, lost connection) nobody awaits it; never unhandled
    const timeoutMs = this.#settings.queryTimeoutMs;
    let cancel: () => void = () => undefined;
    let abandon: (error: Error) => void = () => undefined;
    const abandoned = new Promise<never>((_, reject) => {
      abandon = reject;
      // mysql2 cannot cancel a query; replacing the connection is the only way to stop waiting on it.
      cancel = this.#settings.clock.setTimer(timeoutMs, () => {
        const error = new Error(`no reply within queryTimeoutMs=${timeoutMs}; reconnecting`);
        this.#lost(connection, error);
        reject(error);
      });
    });
    // A connection lost by another path (the socket ended) must fail the query at once: mysql2 does not
    // always settle a command whose connection we destroy.
    const inflight = { connection, abandon };
    this.#inflight.add(inflight);
    try {
      const [result] = await Promise.race([query, abandoned]);
      return result as R;
    } catch (error) {
      if (classifySqlError('mysql', error).failure === 'connection') this.#lost(connection, error as Error);
      throw error;
    } finally {
      cancel();
      this.#inflight.delete(inflight);
    }
  }

  #lost(connection: Mysql.Connection, error: Error): void {
    if (connection !== this.#connection) return;
    this.#connection = undefined;
    this.#lastError = error;
    for (const query of [...this.#inflight]) if (query.connection === connection) query.abandon(error);
    connection.destroy();
    if (this.#state === 'connected') {
      this.#state = 'reconnecting';
      for (const listener of [...this.#lostListeners]) listener();
      this.#scheduleReconnect();
    }
  }

  #scheduleReconnect(): void {
    if (this.#state !== 'reconnecting') return;
    this.#cancelReconnect = this.#settings.clock.setTimer(this.#backoff.next(), () => {
      this.#cancelReconnect = undefined;
      this.#connecting = this.#reconnect().finally(() => {
        this.#connecting = undefined;
      });
    });
  }

  async #reconnect(): Promise<void> {
    try {
      const { connection, view } = await connectOnce(this.#driver, this.#settings, (c, e) => this.#lost(c, e));
      if (this.#state === 'closed') {
        connection.destroy();
        return;
      }
      this.#connection = connection;
      this.#view = view;
      this.#state = 'connected';
      this.#backoff.reset();
      for (const listener of [...this.#reconnectListeners]) listener();
    } catch (error) {
      this.#lastError = error as Error;
      this.#scheduleReconnect();
    }
  }
}

async function connectOnce(
  driver: MysqlDriver,
  settings: ConnectionSettings,
  onLost: (connection: Mysql.Connection, error: Error) => void,
): Promise<{ connection: Mysql.Connection; view: CrashView }> {
  // Statements are batched (one round trip for a write and its change bump).
  const connection = await driver.createConnection({ ...settings.connect, multipleStatements: true });
  // Attached before anything else can happen: an unhandled 'error' event would crash the process.
  let lost: (error: Error) => void = () => undefined;
  connection.on('error', (error: Error) => lost(error));
  connection.on('end', () => lost(new Error('the server closed the connection')));
  try {
    const run = async (sql: string) => (await raceTimeout(connection.query(sql), settings.clock, settings.queryTimeoutMs))[0];
    await run(sessionSettings(settings.lockWaitTimeoutS));
    const [identity, uptime] = (await run(connectionIdentity().sql)) as [
      { conn_id: string; server_name: string; now_s: string; sees_all: number }[],
      { Value: string }[],
    ];
    const row = identity[0];
    if (!row) throw new Error('no reply to the connection identity query');
    const view: CrashView = {
      enabled: settings.crashDetection,
      serverName: row.server_name,
      serverBoot: Math.round(Number(row.now_s) - Number(uptime[0]?.Value ?? 0)),
      seesAllConnections: Number(row.sees_all) === 1,
      connId: Number(row.conn_id),
    };
    // Held until the connection ends: a peer's crash watch blocked on it hears the end at once.
    if (settings.crashDetection) await run(holdConnectionLock().sql);
    lost = (error) => onLost(connection, error);
    return { connection, view };
  } catch (error) {
    connection.destroy();
    throw error;
  }
}

async function raceTimeout<T>(promise: Promise<T>, clock: Clock, ms: number): Promise<T> {
  let cancel: () => void = () => undefined;
  const timeout = new Promise<never>((_, reject) => {
    cancel = clock.setTimer(ms, () => reject(new Error(`no reply within ${ms} ms`)));
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    cancel();
  }
}
