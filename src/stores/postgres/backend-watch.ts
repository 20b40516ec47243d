/**
 * Hears a peer's crash the moment its backend ends, instead of at the next reap round.
 *
 * Every handle's statement connection holds a session-level advisory lock named by its own backend pid
 * (`pg_advisory_lock(class, pg_backend_pid())`, taken on every connect). The server releases it when that
 * backend exits — which is when the handle's process died or its connection was reset. A watcher waits
 * for ONE such lock on a connection of its own: the next live session's backend after its own in pid
 * order (a ring, so every bound session has a watcher and each handle waits on one lock only). When the
 * wait ends it runs the reaper at once, whose NOTIFY tells every node; so a crashed owner's keys are free
 * one reap round trip after its backend ended, not `reapMs / 2` later on average.
 *
 * The wait is bounded by `lock_timeout` (`retargetMs`): the ring is re-read that often, so a session that
 * joined meanwhile is watched after at most that long (until then the reaper's rounds still find it).
 *
 * Guarantees: an accelerator only. Whether a session is dead is still decided by the statements'
 * `connectionGone()` check on `pg_stat_activity`; a wait that ends for another reason (the lock released by
 * an unlock, a pid reused) just costs a reap. Non-guarantee: the backend releases its locks slightly
 * before it leaves `pg_stat_activity`, so a reap that finds nothing is repeated a few times shortly after.
 */
import type { ClientConfig } from 'pg';
import { Backoff } from '../../core/backoff.js';
import { sleep, type Clock } from '../../core/clock.js';
import type { PgDriver } from '../../sql/drivers.js';
import { PgConnection, type PgServers } from './connection.js';

/** SQLSTATE of `lock_timeout`: the wait ended without the lock; re-read the ring. */
const LOCK_NOT_AVAILABLE = '55P03';

/** After a wake, the reaper runs again after these pauses while it finds no dead session (see above). */
const REAP_RETRY_MS = [5, 20, 60] as const;

export interface BackendWatchOptions {
  readonly driver: Pick<PgDriver, 'Client'>;
  /** The store's client configuration; the watch adds its own timeouts. */
  readonly config: ClientConfig;
  /** The store's hosts: the watch follows the store to the read-write one. */
  readonly servers: PgServers;
  readonly clock: Clock;
  readonly label: string;
  /** The advisory lock class of this schema (the first key of the two-key form). */
  readonly lockClass: number;
  /** How long one wait lasts before the ring is read again. */
  readonly retargetMs: number;
  /** The store's statement timeout, added to `retargetMs` for the wait's own. */
  readonly queryTimeoutMs: number;
  /** The backend to wait for: the ring's next after this handle's, or undefined when there is none. */
  readonly target: () => Promise<number | undefined>;
  /** Deletes dead sessions and notifies; resolves to how many it deleted. */
  readonly reap: () => Promise<number>;
}

/** One background wait loop; {@link BackendWatch.close} resolves when it and its connection ended. */
export class BackendWatch {
  readonly #options: BackendWatchOptions;
  readonly #abort = new AbortController();
  readonly #backoff = new Backoff({ initialMs: 100, maxMs: 5000 });
  readonly #loop: Promise<void>;
  #connection: PgConnection | undefined;

  constructor(options: BackendWatchOptions) {
    this.#options = options;
    this.#loop = this.#run();
  }

  async close(): Promise<void> {
    this.#abort.abort();
    // Ends a wait in flight: the blocked statement rejects when its connection closes.
    await this.#connection?.close();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { signal } = this.#abort;
    while (!signal.aborted) {
      try {
        const pid = await this.#options.target();
        if (pid === undefined) {
          await sleep(this.#options.clock, this.#options.retargetMs, signal);
          continue;
        }
        if (await this.#waitFor(pid)) await this.#reapAfterWake(signal);
        this.#backoff.reset();
      } catch {
        // The store is unreachable or the connection broke: the handle reconnects on its own, and the
        // reaper's rounds cover crashes meanwhile. Wait before trying again, never spin.
        if (!signal.aborted) await sleep(this.#options.clock, this.#backoff.next(), signal).catch(() => undefined);
      }
    }
  }

  /** True when `pid`'s lock was free or freed (its backend ended); false when the wait timed out. */
  async #waitFor(pid: number): Promise<boolean> {
    const connection = await this.#openConnection();
    try {
      // Taken and given back in one statement: the watcher holds it for microseconds, so a new backend
      // that is given the same pid and locks it for itself waits at most that long.
      await connection.query('SELECT pg_advisory_unlock($1, $2) FROM (SELECT pg_advisory_lock($1, $2)) AS waited', [this.#options.lockClass, pid]);
      return true;
    } catch (error) {
      if ((error as { cause?: { code?: unknown } }).cause?.code === LOCK_NOT_AVAILABLE) return false;
      throw error;
    }
  }

  async #reapAfterWake(signal: AbortSignal): Promise<void> {
    if ((await this.#options.reap()) > 0) return;
    for (const pause of REAP_RETRY_MS) {
      await sleep(this.#options.clock, pause, signal);
      if ((await this.#options.reap()) > 0) return;
    }
  }

  async #openConnection(): Promise<PgConnection> {
    if (this.#connection) return this.#connection;
    const { retargetMs, queryTimeoutMs } = this.#options;
    this.#connection = await PgConnection.open({
      driver: this.#options.driver,
      // A wait longer than lock_timeout is an error (55P03), not a dropped connection: the client's and the
      // server's statement timeouts leave it room.
      config: { ...this.#options.config, lock_timeout: retargetMs, statement_timeout: retargetMs + queryTimeoutMs },
      servers: this.#options.servers,
      clock: this.#options.clock,
      label: `${this.#options.label} (crash watch)`,
      queryTimeoutMs: retargetMs + queryTimeoutMs,
    });
    // Closed while connecting: close() found no connection to end, so this one is ours to end.
    if (this.#abort.signal.aborted) await this.#connection.close();
    return this.#connection;
  }
}
