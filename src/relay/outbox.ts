/**
 * The entry point of a change and the outbox rows that carry it on.
 *
 * {@link RelayEmitter.emit} is the application call: inside the application's own transaction it takes the
 * key's next sequence number, runs the named statement (the change itself) and writes one outbox row per
 * child in the change's route. The change and its replication commit together or not at all — there is
 * no window in which a committed change has no outbox row, nor an outbox row without its change.
 *
 * Guarantees: the origin runs exactly the statement and arguments it sends (both come from the registry
 * and the same checked arguments); concurrent emits of one key are serialised by the sequence row's lock,
 * so sequence order is the order in which the origin applied them.
 */
import type { Clock } from '../core/clock.js';
import { ConfigError } from '../core/errors.js';
import { describe } from '../core/duration.js';
import { encodeEnvelope, newChangeId, toJsonArgs, type Envelope } from './envelope.js';
import type { RelayDatabase, RelayTx } from './dialects/dialect.js';
import { assertRoutingKey, type Topology } from './topology.js';

export interface EmitOptions {
  /** The ordering key: changes of one key are applied everywhere in the order they were emitted here. ≤ 128 characters. */
  readonly key: string;
  /** Matched against nodes' `keys` to choose the route. Default `"default"`. */
  readonly routingKey?: string;
}

/** One change for {@link RelayEmitter.emitMany}. */
export interface Change extends EmitOptions {
  readonly statement: string;
  readonly args: Readonly<Record<string, unknown>>;
}

export interface Emitted {
  readonly id: string;
  readonly seq: number;
  /** The nodes the change was sent to directly (the children of the origin in its route). */
  readonly targets: readonly string[];
}

/** One envelope on its way to one child: what {@link writeOutbox} bundles into `relay_outbox` rows. */
export interface OutboxRow {
  readonly target: string;
  readonly part: number;
  /** The encoded envelope. */
  readonly body: string;
}

/** Most envelopes in one outbox row (and so in one message, unless rows are joined: see publisher.ts). */
export const BUNDLE_MAX_CHANGES = 500;
/** A row is closed once its body passes this many bytes (an envelope alone may be larger). */
export const BUNDLE_MAX_BYTES = 256 * 1024;

export interface RelayEmitterOptions {
  readonly topology: Topology;
  /** The node this database belongs to (the origin of what is emitted here). */
  readonly node: string;
  readonly db: RelayDatabase;
  readonly clock: Clock;
  /** Names the application in envelopes. Default `"app"`. */
  readonly app?: string;
}

export class RelayEmitter {
  readonly #options: RelayEmitterOptions;
  readonly #app: string;
  /** Outbox rows of the transactions run by {@link transaction}, written once just before they commit. */
  readonly #pending = new WeakMap<RelayTx, OutboxRow[]>();

  constructor(options: RelayEmitterOptions) {
    options.topology.node(options.node); // throws ConfigError for an unknown node
    this.#options = options;
    this.#app = options.app ?? 'app';
    if (typeof this.#app !== 'string' || this.#app.length > 128) throw new ConfigError(`app: must be a string of at most 128 characters, got ${describe(options.app)}`);
  }

  /**
   * Runs `fn` in one transaction of the node's database. The outbox rows of the changes it emits are
   * written in one statement at its end, before the commit (fewer round trips than a row per emit).
   * @throws what `fn` throws (after a rollback), RelayDatabaseError.
   */
  transaction<T>(fn: (tx: RelayTx) => Promise<T>): Promise<T> {
    const { db, clock } = this.#options;
    return db.transaction(async (tx) => {
      const pending: OutboxRow[] = [];
      this.#pending.set(tx, pending);
      try {
        const result = await fn(tx);
        if (pending.length > 0) {
          await writeOutbox(tx, db, pending, clock.now());
          await db.notifyOutboxWritten?.(tx);
        }
        return result;
      } finally {
        this.#pending.delete(tx);
      }
    });
  }

  /**
   * Makes a change and queues its replication, in the caller's transaction `tx` (from {@link transaction},
   * or from `db.transaction()` of the same database). Commit the transaction to make both happen.
   * @throws StatementError for an unknown statement or bad arguments (nothing was written),
   *   ConfigError for a bad key or routing key, RelayDatabaseError when the statement fails.
   */
  async emit(tx: RelayTx, statement: string, args: Readonly<Record<string, unknown>>, options: EmitOptions): Promise<Emitted> {
    const [emitted] = await this.emitMany(tx, [{ statement, args, ...options }]);
    return emitted as Emitted;
  }

  /**
   * Makes several changes, in order, in `tx`: like {@link emit} for each, with one sequence statement for
   * all of them (2 + n round trips instead of 3 n). Every change is checked before anything is written.
   * @throws as {@link emit}.
   */
  async emitMany(tx: RelayTx, changes: readonly Change[]): Promise<Emitted[]> {
    const { topology, node, db, clock } = this.#options;
    if (changes.length === 0) return [];
    const checked = changes.map((change, i) => {
      const at = changes.length === 1 ? 'emit' : `emit: change ${i}`;
      const key = change?.key;
      if (typeof key !== 'string' || key.length > 128) throw new ConfigError(`${at}: key must be a string of at most 128 characters, got ${describe(key)}`);
      const routingKey = change.routingKey ?? 'default';
      assertRoutingKey(routingKey, `${at}: routingKey`);
      const args = toJsonArgs(change.args);
      return { statement: change.statement, args, key, routingKey, bound: topology.statements.bind(change.statement, args, db.kind) };
    });
    // The sequence rows first, keys in sorted order: their locks order concurrent emits of a key before
    // either runs its statement, and a fixed lock order keeps two emitting transactions from deadlocking.
    const counts = new Map<string, number>();
    for (const change of checked) counts.set(change.key, (counts.get(change.key) ?? 0) + 1);
    const sorted = new Map([...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    const last = await db.takeSeqs(tx, sorted);
    const next = new Map([...counts].map(([key, n]) => [key, (last.get(key) as number) - n + 1]));
    const emitted: Emitted[] = [];
    const rows: OutboxRow[] = [];
    // The statements go out without waiting for each answer (pipelined on PostgreSQL) and are awaited in
    // order below: the first failure is the one thrown, and the caller's transaction rolls back.
    const statements: Promise<unknown>[] = [];
    for (const change of checked) {
      const seq = next.get(change.key) as number;
      next.set(change.key, seq + 1);
      const statement = tx.query(change.bound.sql, change.bound.values).catch((error: unknown) => {
        throw db.wrap(error, `statement "${change.statement}"`);
      });
      statement.catch(() => undefined); // awaited below; until then a rejection is not unhandled
      statements.push(statement);
      const envelope: Envelope = {
        v: 2,
        id: newChangeId(clock),
        origin: node,
        app: this.#app,
        key: change.key,
        seq,
        rk: change.routingKey,
        route: topology.routeFrom(node, change.routingKey),
        visited: [node],
        statement: change.statement,
        args: change.args,
        createdAt: Math.floor(clock.now()),
      };
      const forward = forwardRows(envelope, node, topology.partitionOf(change.key));
      rows.push(...forward);
      emitted.push({ id: envelope.id, seq, targets: forward.map((r) => r.target) });
    }
    for (const statement of statements) await statement;
    const pending = this.#pending.get(tx);
    if (pending) pending.push(...rows);
    else if (rows.length > 0) {
      await writeOutbox(tx, db, rows, clock.now());
      await db.notifyOutboxWritten?.(tx);
    }
    return emitted;
  }
}

/**
 * The outbox rows that carry a change from `node` to each of its children in the route: a copy per child
 * with that child's subtree as its route and `node` appended to `visited`. `envelope.route` is `node`'s
 * own subtree. A child that already is in `visited` (or is `node`) is never sent to: provenance is the
 * last line of defence against a loop even if a route were wrong.
 */
export function forwardRows(envelope: Envelope, node: string, part: number): OutboxRow[] {
  const visited = envelope.visited.includes(node) ? envelope.visited : [...envelope.visited, node];
  const rows: OutboxRow[] = [];
  for (const [child, below] of Object.entries(envelope.route)) {
    if (child === node || visited.includes(child)) continue;
    rows.push({ target: child, part, body: encodeEnvelope({ ...envelope, route: below, visited }) });
  }
  return rows;
}

/**
 * Writes envelopes to the outbox, one row per bundle: the envelopes for one (target, partition), in their
 * order, up to {@link BUNDLE_MAX_CHANGES} or {@link BUNDLE_MAX_BYTES} per row. A row's body is a JSON
 * array, `changes` the number of envelopes in it. Rows go in chunks (a statement's parameter count is bounded).
 */
export async function writeOutbox(tx: RelayTx, db: RelayDatabase, envelopes: readonly OutboxRow[], nowMs: number): Promise<void> {
  const rows = bundle(envelopes);
  const CHUNK = 500;
  for (let i = 0; i < rows.length; i += CHUNK) {
    const statement = db.sql.insertOutbox(rows.slice(i, i + CHUNK).map((row) => [row.target, row.part, row.body, row.changes, Math.floor(nowMs)]));
    await tx.query(statement.sql, statement.values);
  }
}

/** Groups envelopes by (target, partition), keeping their order within each, into rows of bounded size. */
export function bundle(envelopes: readonly OutboxRow[]): { target: string; part: number; body: string; changes: number }[] {
  const open = new Map<string, { target: string; part: number; bodies: string[]; bytes: number }>();
  const rows: { target: string; part: number; body: string; changes: number }[] = [];
  const close = (b: { target: string; part: number; bodies: string[] }) => rows.push({ target: b.target, part: b.part, body: `[${b.bodies.join(',')}]`, changes: b.bodies.length });
  for (const e of envelopes) {
    const stream = `${e.target}\u0000${e.part}`;
    let b = open.get(stream);
    if (b && (b.bodies.length >= BUNDLE_MAX_CHANGES || b.bytes + e.body.length > BUNDLE_MAX_BYTES)) {
      close(b);
      b = undefined;
    }
    if (!b) open.set(stream, (b = { target: e.target, part: e.part, bodies: [], bytes: 0 }));
    b.bodies.push(e.body);
    b.bytes += e.body.length + 1;
  }
  for (const b of open.values()) close(b);
  return rows;
}
