/**
 * Hears a peer's crash the moment its connection ends, instead of at the next reaper round.
 *
 * Every crash-detecting connection holds a user-level lock named by its own connection id
 * (`GET_LOCK('baton-conn-<id>', 0)` on every connect); the server releases it when that connection's
 * thread ends — the handle's process died or its connection was cut. A watcher blocks in `GET_LOCK` on
 * ONE such lock, on a connection of its own: the next live session's connection after its own in id
 * order (a ring, so every bound session has a watcher and each handle waits on one lock only). When the
 * wait ends it runs the reaper at once, so a crashed owner's keys are free one reap round trip after its
 * connection ended, not `crashCheckMs / 2` later on average.
 *
 * The wait is bounded (`retargetS`): the ring is re-read that often, so a session that joined meanwhile
 * is watched after at most that long (until then the reaper's rounds still find it).
 *
 * A graceful close ends the connection too, right after the session's keys were released: the wake is
 * also a hint (`woke`), so the watcher's node hears of the released keys now, not at its next change poll.
 *
 * Guarantees: an accelerator only. Whether a session is dead is still decided by the statements'
 * PROCESSLIST check (`crashedCondition` in statements.ts); a wait that ends for another reason (a
 * connection that never took the lock: `crashDetection=false`, an older baton) just costs a reap and a
 * spurious hint, and when the ring then names the same target again the watcher pauses `retargetS`
 * before waiting on it, so such a target is not asked in a loop. Non-guarantee: the server releases a
 * thread's locks slightly before the thread leaves PROCESSLIST, so a reap that finds nothing is repeated a
 * few times shortly after.
 */
import { Backoff } from '../../core/backoff.js';
import { sleep, type Clock } from '../../core/clock.js';
import type { MysqlDriver } from '../../sql/drivers.js';
import { MysqlConnection, type ConnectionSettings } from './connection.js';
import { awaitConnectionLock, connectionLockName } from './statements.js';

/** After a wake, the reaper runs again after these pauses while it finds no dead session (see above). */
const REAP_RETRY_MS = [5, 20, 60] as const;

export interface ConnectionWatchOptions {
  readonly driver: MysqlDriver;
  /** The store's connection settings; the watch's connection takes no lock of its own and waits longer. */
  readonly settings: ConnectionSettings;
  readonly clock: Clock;
  /** How long one wait lasts before the ring is read again, in whole seconds. */
  readonly retargetS: number;
  /** The connection id to wait for: the ring's next after this handle's, or undefined when there is none. */
  readonly target: () => Promise<number | undefined>;
  /** Deletes dead sessions and notifies; resolves to how many it deleted. */
  readonly reap: () => Promise<number>;
  /**
   * Tells the node to look now: called after a wake's first reap (the target's connection ended: a crash,
   * whose keys that reap just freed, or a close, whose keys were released before), and after a later
   * retry that reaped.
   */
  readonly woke: () => void;
}

/** One background wait loop; {@link ConnectionWatch.close} resolves when it and its connection ended. */
export class ConnectionWatch {
  readonly #options: ConnectionWatchOptions;
  readonly #abort = new AbortController();
  readonly #backoff = new Backoff({ initialMs: 100, maxMs: 5000 });
  readonly #loop: Promise<void>;
  #connection: Promise<MysqlConnection> | undefined;

  constructor(options: ConnectionWatchOptions) {
    this.#options = options;
    this.#loop = this.#run();
  }

  async close(): Promise<void> {
    this.#abort.abort();
    // Ends a wait in flight: the blocked statement fails when its connection is destroyed.
    const connection = await this.#connection?.catch(() => undefined);
    await connection?.close({ abandon: true });
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { signal } = this.#abort;
    const { clock, retargetS } = this.#options;
    /** A target whose wake found nothing dead while it stays in the ring: it never held its lock. */
    let fruitless: number | undefined;
    while (!signal.aborted) {
      try {
        const connId = await this.#options.target();
        if (connId === undefined || connId === fruitless) {
          fruitless = undefined;
          await sleep(clock, retargetS * 1000, signal);
          continue;
        }
        if (await this.#waitFor(connId)) {
          fruitless = (await this.#reapAfterWake(signal)) ? undefined : connId;
        }
        this.#backoff.reset();
      } catch {
        // The server is unreachable or the connection broke: it reconnects on its own, and the reaper's
        // rounds cover crashes meanwhile. Wait before trying again, never spin.
        if (!signal.aborted) await sleep(clock, this.#backoff.next(), signal).catch(() => undefined);
      }
    }
  }

  /** True when `connId`'s lock was free or freed (its connection ended); false when the wait timed out. */
  async #waitFor(connId: number): Promise<boolean> {
    const connection = await this.#openConnection();
    const name = connectionLockName(connId);
    const [row] = await connection.exclusive('crash watch', (run) =>
      run<{ freed: number | string | null }[]>(awaitConnectionLock(name, this.#options.retargetS)),
    );
    return Number(row?.freed) === 1;
  }

  /** True when a reap found a dead session. */
  async #reapAfterWake(signal: AbortSignal): Promise<boolean> {
    const reaped = await this.#options.reap();
    this.#options.woke();
    if (reaped > 0) return true;
    for (const pause of REAP_RETRY_MS) {
      await sleep(this.#options.clock, pause, signal);
      if ((await this.#options.reap()) > 0) {
        this.#options.woke();
        return true;
      }
    }
    return false;
  }

  #openConnection(): Promise<MysqlConnection> {
    const { settings, retargetS } = this.#options;
    this.#connection ??= MysqlConnection.open(this.#options.driver, {
      ...settings,
      // A watcher is nobody's target: its connection binds no session and holds no lock.
      crashDetection: false,
      // The wait itself lasts up to retargetS: the call's own timeout leaves it room.
      queryTimeoutMs: retargetS * 1000 + settings.queryTimeoutMs,
    }).then(async (connection) => {
      // Closed while connecting: close() found no connection to end, so this one is ours to end.
      if (this.#abort.signal.aborted) await connection.close({ abandon: true });
      return connection;
    });
    // A failed first connect is retried by the loop (after its back-off), not remembered.
    this.#connection.catch(() => {
      this.#connection = undefined;
    });
    return this.#connection;
  }
}
