/**
 * One PostgreSQL connection that survives outages: a `pg.Client` replaced by a new one, with backoff, when
 * it breaks. A store handle is exactly one backend — which is what lets a session be bound to
 * `pg_backend_pid()` (see postgres-store.ts, crash detection). Statements run in the order they are
 * issued; with `pipeline`, pg's pipeline mode writes each one at once instead of waiting for the previous
 * answer, so concurrent callers (ten lock loops on one handle) share round trips rather than queue for
 * them. A statement given a `name` is prepared once per connection and then only bound and executed.
 *
 * Guarantees: a broken connection never crashes the process (the client's 'error' event is always
 * handled) and never leaves a promise pending: calls made while it is down reject at once with
 * StoreUnavailableError, a statement unanswered after `queryTimeoutMs` drops the connection, and a new one
 * is made in the background. `onConnect` runs on every new client before it is used (LISTEN, for one).
 * `close()` resolves when the client and every timer are gone.
 * With `servers` (a multi-host URL) every (re)connection tries the hosts in order and keeps the first
 * that is the wanted kind (read-write, or primary): after a standby is promoted, the connection that the
 * old primary's loss dropped comes back on the new one by itself.
 * Non-guarantees: a statement that failed with a connection error may or may not have committed. Two
 * servers that both accept writes (an old primary restarted after a failover, a split brain) are not
 * told apart: the first one listed wins.
 */
import type { Client, ClientConfig, QueryResultRow } from 'pg';
import { Backoff } from '../../core/backoff.js';
import type { Clock } from '../../core/clock.js';
import { ClosedError, StoreUnavailableError } from '../../core/errors.js';
import type { PgDriver } from '../../sql/drivers.js';
import { classifySqlError } from '../../sql/errors.js';

/** Which server a connection keeps (the URL's `target_session_attrs`). */
export type PgTarget = 'read-write' | 'primary';

/** Hosts tried in order on every (re)connection, and the kind of server to keep. */
export interface PgServers {
  readonly hosts: readonly { readonly host: string; readonly port: number }[];
  readonly target: PgTarget;
}

export interface PgConnectionOptions {
  readonly driver: Pick<PgDriver, 'Client'>;
  readonly config: ClientConfig;
  /** Default: the config's host alone, whatever kind of server it is. */
  readonly servers?: PgServers;
  readonly clock: Clock;
  /** Names the connection in messages: `postgres store "postgres://u:***@h/db"`, `… (change notifications)`. */
  readonly label: string;
  readonly queryTimeoutMs: number;
  /** Runs on each new client before it serves statements; a failure counts as a failed connect. */
  readonly onConnect?: (client: Client, reconnected: boolean) => Promise<void>;
  /** Runs when an established connection is lost (not on close()). */
  readonly onLost?: () => void;
  /**
   * pg's pipeline mode (statements written without waiting for the previous answer, answered in order).
   * Nothing may keep a portal open on the connection (no cursors, no `rows` option).
   */
  readonly pipeline?: boolean;
}

type State = 'up' | 'down' | 'closed';

export class PgConnection {
  readonly #options: PgConnectionOptions;
  readonly #backoff = new Backoff({ initialMs: 50, maxMs: 2000 });
  #client: Client | undefined;
  #state: State = 'down';
  /** Tail of the FIFO of statements: each waits for the previous one to settle. */
  #tail: Promise<unknown> = Promise.resolve();
  #cancelRetry: (() => void) | undefined;
  #connecting: Promise<void> | undefined;
  #lastError: Error | undefined;

  private constructor(options: PgConnectionOptions) {
    this.#options = options;
  }

  /** Connects once; @throws StoreUnavailableError when the server cannot be reached or refuses us. */
  static async open(options: PgConnectionOptions): Promise<PgConnection> {
    const connection = new PgConnection(options);
    await connection.#connect(false);
    return connection;
  }

  get isUp(): boolean {
    return this.#state === 'up';
  }

  /**
   * Runs one statement; `name` prepares it (once per connection) under that name, which must always
   * stand for the same text. @throws StoreUnavailableError (connection or SQL error), ClosedError.
   */
  query<R extends QueryResultRow>(text: string, values: readonly unknown[] = [], name?: string): Promise<R[]> {
    // Pipelined, the driver keeps the order: hand it over at once (awaiting first would cost a round trip each).
    if (this.#options.pipeline) return this.#run<R>(text, values, name);
    const run = this.#tail.then(() => this.#run<R>(text, values, name));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** Ends the client and stops reconnecting. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#cancelRetry?.();
    this.#cancelRetry = undefined;
    await this.#connecting?.catch(() => undefined);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined); // closing: a failure to say goodbye changes nothing
  }

  async #run<R extends QueryResultRow>(text: string, values: readonly unknown[], name: string | undefined): Promise<R[]> {
    if (this.#state === 'closed') throw new ClosedError(`${this.#options.label}: handle is closed`);
    const client = this.#client;
    if (this.#state !== 'up' || !client) {
      throw new StoreUnavailableError(
        `${this.#options.label}: not connected (${this.#lastError?.message ?? 'connection lost'}); reconnecting in the background`,
        { cause: this.#lastError },
      );
    }
    let timedOut = false;
    const cancelTimeout = this.#options.clock.setTimer(this.#options.queryTimeoutMs, () => {
      timedOut = true;
      // end() destroys the socket when a statement is in flight: the pending query rejects at once.
      this.#lost(client, new Error(`no answer within queryTimeoutMs (${this.#options.queryTimeoutMs} ms)`));
    });
    try {
      const result = await (name === undefined
        ? client.query<R>(text, values as unknown[])
        : client.query<R>({ name, text, values: values as unknown[] }));
      return result.rows;
    } catch (error) {
      const { failure, driverCode } = classifySqlError('postgres', error);
      // A network error, operator intervention (57: shutdown, cancel) or a connection exception (08) ends
      // the connection; other server errors leave it usable.
      if (timedOut || failure === 'connection') this.#lost(client, error as Error);
      const detail = timedOut ? `no answer within queryTimeoutMs (${this.#options.queryTimeoutMs} ms)` : (error as Error).message;
      throw new StoreUnavailableError(`${this.#options.label}: ${driverCode && !timedOut ? `${driverCode}: ` : ''}${detail}`, { cause: error });
    } finally {
      cancelTimeout();
    }
  }

  async #connect(reconnected: boolean): Promise<void> {
    const hosts = this.#options.servers?.hosts ?? [{}];
    const failures: string[] = [];
    for (const host of hosts) {
      const client = await this.#open(host, reconnected).catch((error: unknown) => {
        // Named only among several: the driver's message already names a lone host.
        const where = hosts.length > 1 && 'host' in host ? `${host.host}:${host.port}: ` : '';
        failures.push(`${where}${(error as Error).message}`);
        this.#lastError = error as Error;
      });
      if (!client) continue;
      if (this.#state === 'closed') {
        await client.end().catch(() => undefined);
        return;
      }
      this.#client = client;
      this.#state = 'up';
      this.#lastError = undefined;
      this.#backoff.reset();
      return;
    }
    const error = new StoreUnavailableError(`${this.#options.label}: cannot connect: ${failures.join('; ')}`, { cause: this.#lastError });
    this.#lastError = error;
    throw error;
  }

  /** Connects to one host; rejects when it cannot, or when it is not the kind of server wanted. */
  async #open(host: { readonly host?: string; readonly port?: number }, reconnected: boolean): Promise<Client> {
    const config = { ...this.#options.config, ...host, ...(this.#options.pipeline ? { pipeline: true } : {}) };
    const client = new this.#options.driver.Client(config as ClientConfig);
    // Must be attached before connect(): an unhandled 'error' event would crash the process.
    client.on('error', (error) => this.#lost(client, error));
    client.on('end', () => this.#lost(client, new Error('connection ended')));
    const attempt = (async () => {
      try {
        await client.connect();
        if (this.#options.servers) await checkTarget(client, this.#options.servers.target);
        await this.#options.onConnect?.(client, reconnected);
      } catch (error) {
        await client.end().catch(() => undefined); // already failing: the connect error is what we report
        throw error;
      }
    })();
    this.#connecting = attempt.then(
      () => undefined,
      () => undefined,
    );
    try {
      await attempt;
    } finally {
      this.#connecting = undefined;
    }
    return client;
  }

  /** Forgets a broken client (once) and schedules a new connection. */
  #lost(client: Client, error: Error): void {
    if (client !== this.#client) return;
    this.#client = undefined;
    this.#lastError = error;
    void client.end().catch(() => undefined); // the client is broken already; ending it only frees the socket
    if (this.#state === 'closed') return;
    this.#state = 'down';
    this.#options.onLost?.();
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#cancelRetry || this.#state === 'closed') return;
    this.#cancelRetry = this.#options.clock.setTimer(this.#backoff.next(), () => {
      this.#cancelRetry = undefined;
      if (this.#state !== 'down') return;
      this.#connect(true).catch(() => this.#scheduleReconnect());
    });
  }
}

/** libpq's `target_session_attrs` check. @throws Error naming what the server is instead. */
async function checkTarget(client: Client, target: PgTarget): Promise<void> {
  const { rows } = await client.query<{ recovery: boolean; read_only: string }>(
    "SELECT pg_is_in_recovery() AS recovery, current_setting('transaction_read_only') AS read_only",
  );
  const row = rows[0] as { recovery: boolean; read_only: string };
  if (target === 'primary' && row.recovery) throw new Error('server is a standby (in recovery), not a primary');
  if (target === 'read-write' && row.read_only !== 'off') {
    throw new Error(`server is read-only (${row.recovery ? 'a standby in recovery' : 'default_transaction_read_only'}), not read-write`);
  }
}
