/**
 * Applying received changes: one database transaction per batch, holding for each change its statement,
 * its inbox row, its key's new version and its forwarding outbox rows — all committed together, or none.
 *
 * Per change, in delivery order:
 * - its id is already in the inbox (or earlier in this batch) → a duplicate: nothing happens;
 * - `seq` ≤ the key's applied version → `stale` (a copy of something applied; recorded, not applied);
 * - `seq` > version + 1 → an earlier change of its key has not arrived yet (a redelivery overtook it):
 *   the change is `held` in `relay_held`, and applied right after the change that fills the gap;
 * - `seq` = version + 1 → applied: the statement runs, the version moves on, the change is forwarded
 *   to this node's children in its route, then any held successors follow in order;
 * - a tombstone (`skip`) is recorded `skipped` and forwarded like a change: it keeps the order downstream
 *   of a change that was parked upstream.
 *
 * A statement that fails for good (constraint, bad value, unknown statement) is handled in two passes:
 * the batch is rolled back and applied again with a savepoint around each statement; the failing change is
 * then `parked` (with its reason and envelope), its version still moves on and a tombstone is forwarded,
 * so neither this node nor those below wait for it forever. A transient failure (connection lost, deadlock)
 * rolls the whole batch back and is rethrown: the caller acks nothing and tries again later.
 *
 * Guarantees: with at-least-once delivery and the ack sent only after this commits, every change's effect
 * lands exactly once per database and in sequence order per (origin, key). Two relays of one node racing
 * on one batch cannot both commit it: the inbox primary key makes the second fail (transient) and its
 * retry sees the changes as duplicates.
 */
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { Envelope } from './envelope.js';
import { RelayDatabaseError, StatementError } from './errors.js';
import { forwardRows, writeOutbox, type OutboxRow } from './outbox.js';
import { encodeEnvelope, parseEnvelope } from './envelope.js';
import type { RelayDatabase, RelayTx, Statement } from './dialects/dialect.js';
import type { Topology } from './topology.js';

export type Outcome = 'applied' | 'duplicate' | 'stale' | 'held' | 'parked' | 'skipped';

export interface Incoming {
  readonly envelope: Envelope;
}

export interface ApplyResult {
  /** The outcome of each incoming change, by id (a held change applied in this batch counts as applied). */
  readonly outcomes: ReadonlyMap<string, Outcome>;
  /** Changes applied, with their creation time, for lag and latency. */
  readonly applied: readonly { readonly id: string; readonly createdAt: number }[];
  readonly forwarded: number;
}

export interface ApplierOptions {
  readonly topology: Topology;
  readonly node: string;
  readonly db: RelayDatabase;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** A statement failed for good in a batch without savepoints: the batch must be redone carefully. */
class PermanentFailure extends Error {}

export class Applier {
  readonly #o: ApplierOptions;

  constructor(options: ApplierOptions) {
    this.#o = options;
  }

  /**
   * Applies a batch (in delivery order) in one transaction.
   * @throws RelayDatabaseError with `transient: true` when nothing was committed and a retry may succeed.
   */
  async apply(batch: readonly Incoming[]): Promise<ApplyResult> {
    try {
      return await this.#o.db.transaction((tx) => this.#apply(tx, batch, false));
    } catch (error) {
      if (!(error instanceof PermanentFailure)) throw this.#asTransient(error);
    }
    // Second pass: one savepoint per statement, so the failing change can be parked and the rest applied.
    try {
      return await this.#o.db.transaction((tx) => this.#apply(tx, batch, true));
    } catch (error) {
      throw this.#asTransient(error);
    }
  }

  #asTransient(error: unknown): RelayDatabaseError {
    if (this.#o.db.isUniqueViolation(error)) {
      return new RelayDatabaseError(`${this.#o.db.label}: another relay of node "${this.#o.node}" applied the same changes concurrently; retrying`, true, { cause: error });
    }
    if (error instanceof RelayDatabaseError) return error;
    return new RelayDatabaseError(`${this.#o.db.label}: ${(error as Error)?.message ?? String(error)}`, true, { cause: error });
  }

  async #apply(tx: RelayTx, batch: readonly Incoming[], careful: boolean): Promise<ApplyResult> {
    const { db, clock, node } = this.#o;
    const now = Math.floor(clock.now());
    const outcomes = new Map<string, Outcome>();
    const applied: { id: string; createdAt: number }[] = [];
    const outbox: OutboxRow[] = [];
    // Inbox rows to insert (fresh ids) and to update (held earlier, applied now).
    const inboxRows = new Map<string, { envelope: Envelope; status: Outcome }>();
    const inboxUpdates: { id: string; status: Outcome }[] = [];

    // The same id twice in one batch (published twice): the first copy counts.
    const seen = new Set<string>();
    const unique = batch.filter((item) => {
      if (seen.has(item.envelope.id)) return false;
      seen.add(item.envelope.id);
      return true;
    });
    // What the database knows of the batch, read in one go (pipelined on PostgreSQL): which ids it has
    // seen, and the applied version and held changes of every (origin, key) in the batch.
    const pairKey = (origin: string, key: string) => `${origin}\u0000${key}`;
    const pairs = [...new Map(unique.map((item) => [pairKey(item.envelope.origin, item.envelope.key), item.envelope])).values()];
    const pairRows = chunks(pairs, 250).map((chunk) => chunk.map((e) => [e.origin, e.key]));
    const run = ({ sql, values }: Statement) => tx.query(sql, values);
    const [inboxReads, versionReads, heldReads] = await Promise.all([
      Promise.all(chunks(unique, 500).map((chunk) => run(db.sql.selectInbox(chunk.map((item) => [item.envelope.id]))))),
      Promise.all(pairRows.map((rows) => run(db.sql.selectVersions(rows)))),
      Promise.all(pairRows.map((rows) => run(db.sql.selectHeld(rows)))),
    ]);
    const known = new Set(inboxReads.flatMap((read) => read.rows.map((row) => String(row.id).trim())));
    const fresh = unique.filter((item) => {
      if (!known.has(item.envelope.id)) return true;
      outcomes.set(item.envelope.id, 'duplicate');
      return false;
    });
    if (fresh.length === 0) return { outcomes, applied, forwarded: 0 };
    const versions = new Map<string, number>();
    for (const row of versionReads.flatMap((read) => read.rows)) versions.set(pairKey(String(row.origin), String(row.k)), Number(row.seq));
    const held = new Map<string, Map<number, Incoming>>();
    for (const row of heldReads.flatMap((read) => read.rows)) {
      const key = pairKey(String(row.origin), String(row.k));
      let waiting = held.get(key);
      if (!waiting) held.set(key, (waiting = new Map()));
      waiting.set(Number(row.seq), { envelope: parseEnvelope(String(row.body)) });
    }
    const changedVersions = new Set<string>();
    // Writes whose answer decides nothing below are sent without waiting for it (PostgreSQL pipelines them:
    // a batch costs a few round trips, not one per change) and awaited in order at the end, so the first
    // failure is the one reported. The careful pass waits for each, to park exactly the failing change.
    const sent: Promise<unknown>[] = [];
    const send = (query: Promise<unknown>): Promise<unknown> | undefined => {
      if (careful) return query;
      query.catch(() => undefined); // awaited below; until then a rejection is not unhandled
      sent.push(query);
      return undefined;
    };

    const applyOne = async (item: Incoming, fromHeld: boolean): Promise<void> => {
      const e = item.envelope;
      let status: Outcome = 'applied';
      let skip = e.skip;
      if (skip === undefined) {
        const failure = careful ? await this.#runCarefully(tx, e) : this.#send(tx, e, send);
        if (failure !== undefined) {
          status = 'parked';
          skip = `parked at ${node}: ${failure}`;
          await send(tx.query(db.sql.insertParked, [e.id, e.origin, e.key, e.seq, e.statement, failure.slice(0, 2000), encodeEnvelope(e), now]));
          this.#o.logger.warn({ id: e.id, origin: e.origin, key: e.key, seq: e.seq, statement: e.statement, reason: failure }, 'relay: change parked');
        }
      } else {
        status = 'skipped';
      }
      const forwarded = skip === undefined ? e : { ...e, skip };
      outbox.push(...forwardRows(forwarded, node, this.#o.topology.partitionOf(e.key)));
      if (status === 'applied') applied.push({ id: e.id, createdAt: e.createdAt });
      outcomes.set(e.id, status);
      if (fromHeld) await send(tx.query(db.sql.deleteHeld, [e.origin, e.key, e.seq]));
      // A change held in an earlier batch has its inbox row already; one held in this batch does not yet.
      if (fromHeld && !inboxRows.has(e.id)) inboxUpdates.push({ id: e.id, status });
      else inboxRows.set(e.id, { envelope: e, status });
      const pair = pairKey(e.origin, e.key);
      versions.set(pair, e.seq);
      changedVersions.add(pair);
    };

    for (const item of fresh) {
      const e = item.envelope;
      const pair = pairKey(e.origin, e.key);
      const version = versions.get(pair) ?? 0;
      if (e.seq <= version) {
        outcomes.set(e.id, 'stale');
        inboxRows.set(e.id, { envelope: e, status: 'stale' });
        continue;
      }
      if (e.seq > version + 1) {
        let waiting = held.get(pair);
        if (!waiting) held.set(pair, (waiting = new Map()));
        if (!waiting.has(e.seq)) {
          waiting.set(e.seq, item);
          await send(tx.query(db.sql.insertHeld, [e.origin, e.key, e.seq, encodeEnvelope(e), now]));
          outcomes.set(e.id, 'held');
          inboxRows.set(e.id, { envelope: e, status: 'held' });
        } else {
          // The same (origin, key, seq) under another id: only a forged or corrupted message can do that.
          outcomes.set(e.id, 'stale');
          inboxRows.set(e.id, { envelope: e, status: 'stale' });
        }
        continue;
      }
      await applyOne(item, false);
      // Successors that arrived early follow at once, in order.
      const waiting = held.get(pair);
      for (let next = e.seq + 1; waiting?.has(next); next++) {
        const successor = waiting.get(next) as Incoming;
        waiting.delete(next);
        await applyOne(successor, true);
      }
    }

    // Bookkeeping, batched: inbox rows, updates of held rows, versions, forwards.
    const rows = [...inboxRows.values()];
    for (let i = 0; i < rows.length; i += 500) {
      await send(run(db.sql.insertInbox(rows.slice(i, i + 500).map(({ envelope: e, status }) => [e.id, e.origin, e.key, e.seq, status, now]))));
    }
    for (const update of inboxUpdates) await send(tx.query(db.sql.updateInboxStatus, [update.status, update.id]));
    const changed = [...changedVersions];
    for (let i = 0; i < changed.length; i += 500) {
      const values = changed.slice(i, i + 500).map((pair) => {
        const [origin, key] = pair.split('\u0000') as [string, string];
        return [origin, key, versions.get(pair) as number];
      });
      await send(run(db.sql.upsertVersions(values)));
    }
    for (const query of sent) await query;
    if (outbox.length > 0) {
      await writeOutbox(tx, db, outbox, now);
      // The node's publisher may run in another process (the lock went to another relay of this node).
      await db.notifyOutboxWritten?.(tx);
    }
    return { outcomes, applied, forwarded: outbox.length };
  }

  /** Binds a change's statement: the SQL and values, or the reason it cannot run (nothing ran then). */
  #bind(e: Envelope): { sql: string; values: unknown[] } | string {
    try {
      return this.#o.topology.statements.bind(e.statement, e.args, this.#o.db.kind);
    } catch (error) {
      if (error instanceof StatementError) return error.message;
      throw error;
    }
  }

  /**
   * Sends a change's statement without waiting (first pass). Returns the reason when it cannot be bound;
   * a failure to run rejects the sent query with RelayDatabaseError (transient) or PermanentFailure.
   */
  #send(tx: RelayTx, e: Envelope, send: (query: Promise<unknown>) => unknown): string | undefined {
    const bound = this.#bind(e);
    if (typeof bound === 'string') return bound;
    send(
      tx.query(bound.sql, bound.values).catch((error: unknown) => {
        const wrapped = this.#o.db.wrap(error, `statement "${e.statement}"`);
        throw wrapped.transient ? wrapped : new PermanentFailure(wrapped.message);
      }),
    );
    return undefined;
  }

  /**
   * Runs a change's statement inside a savepoint (second pass). Returns undefined when it was applied, or
   * the reason it cannot be (the change is then parked). @throws RelayDatabaseError (transient).
   */
  async #runCarefully(tx: RelayTx, e: Envelope): Promise<string | undefined> {
    const bound = this.#bind(e);
    if (typeof bound === 'string') return bound; // nothing ran: no savepoint needed
    await tx.query('SAVEPOINT relay_change');
    try {
      await tx.query(bound.sql, bound.values);
      await tx.query('RELEASE SAVEPOINT relay_change');
      return undefined;
    } catch (error) {
      const wrapped = this.#o.db.wrap(error, `statement "${e.statement}"`);
      if (wrapped.transient) throw wrapped;
      await tx.query('ROLLBACK TO SAVEPOINT relay_change');
      return wrapped.message;
    }
  }
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
