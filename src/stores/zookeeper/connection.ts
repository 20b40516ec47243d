/**
 * A promise-based ZooKeeper connection for the store, hiding the quirks of `node-zookeeper-client` 1.1.
 *
 * Guarantees:
 * - Calls never wait for a connection: while disconnected they reject at once with
 *   {@link StoreUnavailableError}; a call without an answer within `requestTimeoutMs` rejects too, and
 *   forces a reconnect (the driver has no read timeout, so a silently dead TCP connection would
 *   otherwise look healthy for minutes).
 * - The driver reconnects by itself, keeping the ZooKeeper session (and its watches and ephemeral
 *   nodes). When the session has expired, this class replaces the client with a new one. Either way
 *   `onReconnect` listeners run once the connection is usable again.
 * - `close()` resolves when the driver's sockets and timers are gone, even when the server is down.
 *
 * Non-guarantees: a call that timed out or lost its connection may still have been applied by the
 * server (its outcome is unknown), like any request over a network.
 *
 * Driver quirks handled here:
 * - version 0 means "any version" to the driver (`version || -1`), so callers must never pass 0: every
 *   znode the store conditions on is created at version 1 (create + setData in one multi);
 * - with `retries: 0` the driver never re-sends a request after a connection loss (a retried create
 *   or setData could be applied twice);
 * - `close()` on a disconnected client waits for a reconnection that may never come: we destroy the
 *   socket ourselves after a grace period.
 */
import type * as Zk from 'node-zookeeper-client';
import type { Clock } from '../../core/clock.js';
import { ClosedError, StoreUnavailableError } from '../../core/errors.js';

export type ZkDriver = typeof Zk;

/** ZooKeeper result codes the store expects as answers (everything else is an outage or a refusal). */
export const ZkCode = {
  OK: 0,
  NO_NODE: -101,
  BAD_VERSION: -103,
  NODE_EXISTS: -110,
  NOT_EMPTY: -111,
} as const;
export type ExpectedCode = (typeof ZkCode)[keyof typeof ZkCode];
const EXPECTED = new Set<number>(Object.values(ZkCode));

/** The fields of a znode's Stat the store uses, decoded from the driver's 8-byte buffers. */
export interface NodeStat {
  /** Data version: 1 right after our create + setData, +1 on every setData. */
  readonly version: number;
  /** Server wall time of the creation, ms since the epoch. */
  readonly ctime: number;
  /** Server wall time of the last write (stamped by the ZooKeeper leader), ms since the epoch. */
  readonly mtime: number;
  /** Transaction id of the last write: unique and strictly increasing over the ensemble's life. */
  readonly mzxid: bigint;
}

export interface NodeData {
  readonly data: Buffer;
  readonly stat: NodeStat;
}

/** One operation of a multi. `version` -1 means any version; 0 is forbidden (see the quirks above). */
export type ZkOp =
  | { readonly op: 'create'; readonly path: string; readonly data: Buffer; readonly ephemeral?: boolean }
  | { readonly op: 'set'; readonly path: string; readonly data: Buffer; readonly version: number }
  | { readonly op: 'check'; readonly path: string; readonly version: number }
  | { readonly op: 'remove'; readonly path: string; readonly version: number };

export type MultiOutcome =
  /** `stats[i]` is the new Stat of op `i` when it is a `set`. */
  | { readonly ok: true; readonly stats: readonly (NodeStat | undefined)[] }
  /** Nothing was applied: op `failedIndex` failed with `code`. */
  | { readonly ok: false; readonly failedIndex: number; readonly code: ExpectedCode };

export interface ZkConnectionConfig {
  /** `host:port[,host:port]` */
  readonly servers: string;
  /** Shown in error messages: the store URL with its password redacted. */
  readonly label: string;
  readonly auth?: { readonly user: string; readonly password: string };
  readonly sessionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** Upper bound of the random pause before the driver retries the server list. */
  readonly reconnectDelayMs: number;
}

/** The driver's ConnectionManager internals we rely on for a bounded close and forced reconnects. */
interface ConnectionManagerInternals {
  state: number;
  socket?: { destroy(): void };
  connectTimeoutHandler?: ReturnType<typeof globalThis.setTimeout> | null;
}
const CM_CLOSED = -2;

type Settle = (error: unknown, value?: unknown) => void;

export class ZkConnection {
  readonly #driver: ZkDriver;
  readonly #config: ZkConnectionConfig;
  readonly #clock: Clock;
  readonly #reconnectListeners = new Set<() => void>();
  readonly #pending = new Set<Settle>();
  /** ACL of the nodes we create: only our digest user when the URL has credentials, else open. */
  readonly #acl: Zk.ACL[];
  #client: Zk.Client;
  #connected = false;
  #authFailed = false;
  #closed = false;
  #replacing: Promise<void> | undefined;

  private constructor(driver: ZkDriver, config: ZkConnectionConfig, clock: Clock) {
    this.#driver = driver;
    this.#config = config;
    this.#clock = clock;
    this.#acl = config.auth
      ? [new driver.ACL(driver.Permission.ALL, new driver.Id('auth', ''))]
      : [new driver.ACL(driver.Permission.ALL, new driver.Id('world', 'anyone'))];
    this.#client = this.#newClient();
  }

  /** Connects, waiting at most `connectTimeoutMs`. @throws StoreUnavailableError */
  static async open(driver: ZkDriver, config: ZkConnectionConfig, clock: Clock): Promise<ZkConnection> {
    const connection = new ZkConnection(driver, config, clock);
    try {
      await connection.#waitConnected(config.connectTimeoutMs);
      return connection;
    } catch (error) {
      await connection.close();
      throw error;
    }
  }

  /** The session timeout the server granted (clamped to its min/max), in ms. */
  get sessionTimeoutMs(): number {
    return this.#client.getSessionTimeout();
  }

  /** Calls `listener` each time the connection is usable again after a loss (same or new ZK session). */
  onReconnect(listener: () => void): () => void {
    this.#reconnectListeners.add(listener);
    return () => this.#reconnectListeners.delete(listener);
  }

  /** The node's data and stat, or null when it does not exist. Sets a one-shot data watch when given. */
  getData(path: string, watcher?: (event: Zk.Event) => void): Promise<NodeData | null> {
    return this.#call<NodeData | null>(`getData ${path}`, (client, settle) => {
      const done = (error: unknown, data: Buffer | undefined, stat: Zk.Stat | undefined) =>
        settle(error, stat ? { data: data ?? Buffer.alloc(0), stat: toStat(stat) } : null);
      if (watcher) client.getData(path, watcher, done);
      else client.getData(path, done);
    });
  }

  /** The node's child names, or null when it does not exist. Sets a one-shot child watch when given. */
  getChildren(path: string, watcher?: (event: Zk.Event) => void): Promise<string[] | null> {
    return this.#call<string[] | null>(`getChildren ${path}`, (client, settle) => {
      const done = (error: unknown, children: string[] | undefined) => settle(error, children ?? null);
      if (watcher) client.getChildren(path, watcher, done);
      else client.getChildren(path, done);
    });
  }

  /** Creates a persistent node with no data; an existing node is fine (idempotent layout setup). */
  async ensure(path: string): Promise<void> {
    await this.#call<null>(`create ${path}`, (client, settle) =>
      client.create(path, Buffer.alloc(0), this.#acl, (error) => settle(error, null)),
    );
  }

  /** Runs `ops` atomically: all are applied or none. */
  multi(ops: readonly ZkOp[]): Promise<MultiOutcome> {
    for (const op of ops) {
      if (op.op !== 'create' && op.version === 0) throw new Error(`zookeeper store: internal: version 0 on ${op.path} would match any version`);
    }
    return this.#call<MultiOutcome>('multi', (client, settle) => {
      const transaction = client.transaction();
      for (const op of ops) {
        if (op.op === 'create') {
          const mode = op.ephemeral ? this.#driver.CreateMode.EPHEMERAL : this.#driver.CreateMode.PERSISTENT;
          transaction.create(op.path, op.data, this.#acl, mode);
        } else if (op.op === 'set') transaction.setData(op.path, op.data, op.version);
        else if (op.op === 'check') transaction.check(op.path, op.version);
        else transaction.remove(op.path, op.version);
      }
      transaction.commit((error, results: { err?: number; stat?: Zk.Stat }[] | undefined) => {
        if (!error) {
          settle(null, { ok: true, stats: (results ?? []).map((r) => (r.stat ? toStat(r.stat) : undefined)) });
          return;
        }
        // On failure ZooKeeper answers 0 for the ops before the failing one, its code for it, and
        // RUNTIME_INCONSISTENCY for the ops after it.
        const failedIndex = results?.findIndex((r) => r.err !== undefined && r.err !== 0) ?? -1;
        const code = failedIndex >= 0 ? (results?.[failedIndex]?.err as number) : codeOf(error);
        if (failedIndex >= 0 && EXPECTED.has(code)) settle(null, { ok: false, failedIndex, code: code as ExpectedCode });
        else settle(error);
      });
    });
  }

  /** Writes an empty value to `path` and returns the server's wall time of that write. */
  async touch(path: string): Promise<number> {
    const outcome = await this.multi([{ op: 'set', path, data: Buffer.alloc(0), version: -1 }]);
    const stat = outcome.ok ? outcome.stats[0] : undefined;
    if (!stat) throw new StoreUnavailableError(`zookeeper store (${this.#config.label}): cannot write ${path} to read server time`);
    return stat.mtime;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#connected = false;
    for (const settle of [...this.#pending]) settle(new ClosedError(`zookeeper store (${this.#config.label}): handle is closed`));
    await this.#replacing?.catch(() => undefined);
    await this.#stopClient(this.#client);
  }

  #newClient(): Zk.Client {
    const client = this.#driver.createClient(this.#config.servers, {
      sessionTimeout: this.#config.sessionTimeoutMs,
      spinDelay: this.#config.reconnectDelayMs,
      retries: 0,
    });
    // The driver emits no 'error' events today; a listener makes sure a future one can never crash us.
    client.on('error', () => undefined);
    client.on('state', (state: Zk.State) => this.#onState(client, state));
    if (this.#config.auth) {
      client.addAuthInfo('digest', Buffer.from(`${this.#config.auth.user}:${this.#config.auth.password}`));
    }
    client.connect();
    return client;
  }

  #onState(client: Zk.Client, state: Zk.State): void {
    if (client !== this.#client || this.#closed) return; // a replaced client's last words
    const { State } = this.#driver;
    if (state === State.SYNC_CONNECTED) {
      const wasDown = !this.#connected;
      this.#connected = true;
      if (wasDown) for (const listener of [...this.#reconnectListeners]) listener();
    } else if (state === State.AUTH_FAILED) {
      this.#connected = false;
      this.#authFailed = true;
    } else if (state === State.EXPIRED) {
      // The server dropped our session (we were away longer than its timeout): its ephemeral nodes and
      // watches are gone. The driver gives up on an expired client, so start a new one.
      this.#connected = false;
      this.#replaceClient();
    } else {
      this.#connected = false;
    }
  }

  #replaceClient(): void {
    const old = this.#client;
    this.#client = this.#newClient();
    this.#replacing = this.#stopClient(old);
  }

  async #waitConnected(timeoutMs: number): Promise<void> {
    const deadline = this.#clock.monotonic() + timeoutMs;
    while (!this.#connected) {
      if (this.#authFailed) {
        throw new StoreUnavailableError(`zookeeper store (${this.#config.label}): authentication failed`);
      }
      if (this.#clock.monotonic() >= deadline) {
        throw new StoreUnavailableError(`zookeeper store (${this.#config.label}): no connection to ${this.#config.servers} within ${timeoutMs} ms`);
      }
      await new Promise<void>((resolve) => this.#clock.setTimer(20, resolve));
    }
  }

  /**
   * Runs one driver call with the outage rules: fail fast when disconnected, time out when unanswered.
   * Expected ZooKeeper answers (no node, node exists, bad version) resolve to null/false-ish values
   * chosen by the caller; any other error rejects with StoreUnavailableError.
   */
  #call<T>(what: string, start: (client: Zk.Client, settle: Settle) => void): Promise<T> {
    if (this.#closed) return Promise.reject(new ClosedError(`zookeeper store (${this.#config.label}): handle is closed`));
    if (!this.#connected) {
      const why = this.#authFailed ? 'authentication failed' : `not connected to ${this.#config.servers} (reconnecting)`;
      return Promise.reject(new StoreUnavailableError(`zookeeper store (${this.#config.label}): ${why}`));
    }
    const client = this.#client;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const settle: Settle = (error, value) => {
        if (settled) return;
        settled = true;
        cancelTimer();
        this.#pending.delete(settle);
        if (!error) resolve(value as T);
        else if (error instanceof ClosedError || error instanceof StoreUnavailableError) reject(error);
        // Reads of a missing node and creates of an existing one are answers, not failures.
        else if (codeOf(error) === ZkCode.NO_NODE || codeOf(error) === ZkCode.NODE_EXISTS) resolve(null as T);
        else reject(this.#unavailable(what, error));
      };
      const cancelTimer = this.#clock.setTimer(this.#config.requestTimeoutMs, () => {
        settle(new StoreUnavailableError(`zookeeper store (${this.#config.label}): ${what}: no answer within ${this.#config.requestTimeoutMs} ms`));
        this.#forceReconnect(client);
      });
      this.#pending.add(settle);
      try {
        start(client, settle);
      } catch (error) {
        settle(error);
      }
    });
  }

  #unavailable(what: string, error: unknown): StoreUnavailableError {
    const code = codeOf(error);
    const reason = code === -102 ? 'not authorized (check the ACLs and the URL credentials)' : String(error);
    return new StoreUnavailableError(`zookeeper store (${this.#config.label}): ${what}: ${reason}`, { cause: error });
  }

  /** Drops the socket of a connection that stopped answering; the driver reconnects, same ZK session. */
  #forceReconnect(client: Zk.Client): void {
    if (client !== this.#client || this.#closed) return;
    internals(client).socket?.destroy();
  }

  /** Closes a client and waits (bounded) until its socket and connect timer are gone. */
  async #stopClient(client: Zk.Client): Promise<void> {
    const cm = internals(client);
    if (cm.state !== CM_CLOSED) client.close();
    // A connected client closes its ZK session (deleting its ephemeral nodes) within a round trip; a
    // disconnected one would wait for a reconnection, so after a grace period we cut its socket.
    // The driver may also be in its random pause before reconnecting: wait that out too, then give up.
    const graceMs = Math.min(1000, this.#config.requestTimeoutMs);
    const giveUpMs = graceMs + this.#config.reconnectDelayMs + 500;
    const started = this.#clock.monotonic();
    while (cm.state !== CM_CLOSED && this.#clock.monotonic() - started < giveUpMs) {
      if (this.#clock.monotonic() - started > graceMs) cm.socket?.destroy();
      await new Promise<void>((resolve) => this.#clock.setTimer(10, resolve));
    }
    if (cm.connectTimeoutHandler) clearTimeout(cm.connectTimeoutHandler);
  }
}

function internals(client: Zk.Client): ConnectionManagerInternals {
  return (client as unknown as { connectionManager: ConnectionManagerInternals }).connectionManager;
}

function codeOf(error: unknown): number {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : Number.NaN;
}

function toStat(stat: Zk.Stat): NodeStat {
  return {
    version: stat.version,
    ctime: Number(stat.ctime.readBigInt64BE(0)),
    mtime: Number(stat.mtime.readBigInt64BE(0)),
    mzxid: stat.mzxid.readBigInt64BE(0),
  };
}
