/**
 * The outbox publisher: one per database, elected by a database lock (PostgreSQL advisory lock, MySQL
 * `GET_LOCK`) held on a connection of its own, so a crashed publisher's lock is gone with its connection.
 * It reads outbox rows in id order, publishes them persistent on a confirm channel — up to a window of
 * unconfirmed ones, so reading and publishing go on while the broker syncs — and deletes each row only
 * after the broker confirmed it.
 *
 * Guarantees: a row leaves the outbox only after the broker confirmed it (it is then in a durable quorum
 * queue, or in the unroutable queue); a nack, a lost channel or a lost database keeps the rows, which are
 * published again (the receivers' inbox makes the copy a no-op). Rows are sent in id order, except a row
 * whose transaction committed after higher ids were read: it goes with the next rescan (at most 1 s later).
 * Non-guarantees: exclusivity is advisory — a publisher cut off from its database keeps the lock until the
 * server notices, and two publishers may briefly overlap; that costs duplicates, never a change or its
 * order (receivers dedupe by id and hold out-of-order changes by sequence number).
 */
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { Backoff } from '../core/backoff.js';
import { sleep, type Clock } from '../core/clock.js';
import { toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { channelClosed } from './amqp-connection.js';
import { amqpNames, type AmqpNames } from './amqp-names.js';
import type { RelayDatabase } from './dialects/dialect.js';
import { SIGNATURE_HEADERS, type Signer } from './signature.js';
import type { Topology } from './topology.js';

export interface PublisherOptions {
  readonly topology: Topology;
  readonly db: RelayDatabase;
  /** Signs each message. */
  readonly signer: Signer;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Rows read per round. */
  readonly batchSize: number;
  /** Most rows published and not yet confirmed and deleted (the confirm window). */
  readonly windowSize: number;
  /** How long an idle publisher waits before looking at the outbox again, unless {@link OutboxPublisher.poke}d. */
  readonly pollMs: number;
  /** How long a publisher that lost the election waits before trying again. */
  readonly lockRetryMs: number;
}

export class OutboxPublisher {
  readonly #o: PublisherOptions;
  readonly #names: AmqpNames;
  #wake: (() => void) | undefined;
  #poked = false;
  #published = 0;
  #leader = false;

  constructor(options: PublisherOptions) {
    this.#o = options;
    this.#names = amqpNames(options.topology);
  }

  /** Messages confirmed by the broker since start. */
  get published(): number {
    return this.#published;
  }

  /** True while this process holds the publisher lock. */
  get leader(): boolean {
    return this.#leader;
  }

  /** New rows were committed: look at the outbox now instead of after the poll interval. */
  poke(): void {
    this.#poked = true;
    this.#wake?.();
  }

  /**
   * Runs until `signal` aborts or the connection fails: campaigns for the lock, then drains. Returns
   * normally on abort; throws when the broker connection is lost (the caller reconnects).
   */
  async run(connection: ChannelModel, signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ initialMs: 100, maxMs: 5000 });
    while (!signal.aborted) {
      let lock;
      try {
        lock = await this.#o.db.tryPublisherLock();
      } catch (error) {
        this.#o.logger.warn({ err: toError(error) }, 'relay publisher: cannot reach the database for the lock; retrying');
        await sleep(this.#o.clock, backoff.next(), signal).catch(() => undefined);
        continue;
      }
      if (!lock) {
        await sleep(this.#o.clock, this.#o.lockRetryMs, signal).catch(() => undefined);
        continue;
      }
      this.#leader = true;
      lock.onOutboxWritten?.(() => this.poke());
      // Either ends the drain: the relay closing or the session ending (signal), or the lock lost.
      const both = new AbortController();
      const stop = () => both.abort();
      signal.addEventListener('abort', stop, { once: true });
      lock.signal.addEventListener('abort', stop, { once: true });
      if (signal.aborted || lock.signal.aborted) both.abort();
      try {
        await this.#drain(connection, both.signal, backoff);
      } finally {
        signal.removeEventListener('abort', stop);
        this.#leader = false;
        await lock.release();
      }
      if (lock.signal.aborted && !signal.aborted) {
        this.#o.logger.warn({ err: toError(lock.signal.reason) }, 'relay publisher: lost the lock; campaigning again');
        await sleep(this.#o.clock, backoff.next(), signal).catch(() => undefined);
      }
    }
  }

  /**
   * Publishes with a window of unconfirmed messages instead of waiting for each read's confirms: reads go on
   * while earlier publishes wait for the broker (a quorum queue confirms after its log is synced, tens of
   * milliseconds here), and confirmed rows are deleted in bulk.
   *
   * Reads follow a cursor (`id > last read`) so that rows in flight are not read again. Ids come from a
   * sequence, and a transaction that took a lower id may commit after a higher one was read: such a row is
   * found by a rescan from the oldest row — whenever nothing is in flight, and at least every second —
   * which skips what is in flight or confirmed. After a nack (a full queue) the window drains, the cursor
   * starts again from the oldest row, and the rows still there go again (receivers drop the copies).
   */
  async #drain(connection: ChannelModel, signal: AbortSignal, backoff: Backoff): Promise<void> {
    const channel = await connection.createConfirmChannel();
    const closed = channelClosed(channel);
    let channelGone = false;
    void closed.then(() => {
      channelGone = true;
      this.#wake?.();
    });
    const window = new Window(this.#o.windowSize);
    window.onChange = () => this.#wake?.();
    let cursor: string | null = null;
    let rescannedAt = -Infinity;
    try {
      while (!signal.aborted && !channelGone) {
        if (window.nacked) {
          // Let every outstanding confirm arrive, keep what was confirmed, then go again from the oldest row.
          await window.settled(signal);
          if (!(await this.#deleteConfirmed(window, backoff, signal))) continue;
          this.#o.logger.warn({}, 'relay publisher: the broker refused messages (a full queue?); publishing them again');
          window.reset();
          cursor = null;
          await sleep(this.#o.clock, backoff.next(), signal).catch(() => undefined);
          continue;
        }
        if (window.confirmed.length >= DELETE_CHUNK || (window.confirmed.length > 0 && window.inFlight === 0)) {
          if (!(await this.#deleteConfirmed(window, backoff, signal))) continue;
        }
        const room = window.room;
        if (room === 0) {
          await this.#idle(signal);
          continue;
        }
        const now = this.#o.clock.monotonic();
        const rescan = cursor === null || window.inFlight === 0 || now - rescannedAt >= RESCAN_MS;
        let rows: OutboxRecord[];
        try {
          const limit = Math.min(room, this.#o.batchSize);
          rows = rescan ? await this.#read(this.#o.db.sql.readOutbox, [limit + window.tracked]) : await this.#read(this.#o.db.sql.readOutboxAfter, [cursor, limit]);
        } catch (error) {
          this.#o.logger.warn({ err: toError(error) }, 'relay publisher: cannot read the outbox; retrying');
          await sleep(this.#o.clock, backoff.next(), signal).catch(() => undefined);
          continue;
        }
        if (rescan) {
          rescannedAt = now;
          rows = rows.filter((row) => !window.has(row.id)).slice(0, room);
        }
        for (const row of rows) if (cursor === null || compareIds(row.id, cursor) > 0) cursor = row.id;
        if (rows.length === 0) {
          if (window.inFlight === 0 && window.confirmed.length === 0) cursor = null; // idle: the next read rescans
          await this.#idle(signal);
          continue;
        }
        await this.#publish(channel, rows, window);
        backoff.reset();
      }
      // Closing: the confirms on their way are worth waiting for (briefly), so fewer rows go twice.
      if (!channelGone && window.inFlight > 0) await window.settled(AbortSignal.timeout(2000));
      if (window.confirmed.length > 0) await this.#deleteConfirmed(window, backoff, AbortSignal.timeout(2000));
    } finally {
      if (!channelGone) await channel.close().catch(() => undefined); // the connection may be gone already
    }
    if (channelGone && !signal.aborted) throw (await closed) ?? new Error('publisher channel closed');
  }

  async #read(sql: string, values: unknown[]): Promise<OutboxRecord[]> {
    return (await this.#o.db.query(sql, values)).rows.map((r) => ({ id: String(r.id), target: String(r.target), part: Number(r.part), body: String(r.body), changes: Number(r.changes) }));
  }

  /** Deletes the confirmed rows. False (after a backoff) when the database refused; they stay confirmed. */
  async #deleteConfirmed(window: Window, backoff: Backoff, signal: AbortSignal): Promise<boolean> {
    const ids = window.confirmed.slice();
    try {
      for (let i = 0; i < ids.length; i += DELETE_CHUNK) {
        const statement = this.#o.db.sql.deleteOutbox(ids.slice(i, i + DELETE_CHUNK).map((id) => [id]));
        await this.#o.db.query(statement.sql, statement.values);
      }
    } catch (error) {
      // Confirmed but not deleted: kept in the window (not published again) and deleted on the next try.
      this.#o.logger.warn({ err: toError(error) }, 'relay publisher: confirmed rows not deleted yet; retrying');
      await sleep(this.#o.clock, backoff.next(), signal).catch(() => undefined);
      return false;
    }
    window.deleted(ids.length);
    this.#published += ids.length;
    return true;
  }

  /**
   * Publishes rows into the window, those of one (target, partition) joined into messages of up to
   * {@link MESSAGE_MAX_CHANGES} envelopes (in id order, so in order within the stream): the broker's work
   * is per message. Each confirm or nack lands on all the rows of its message.
   */
  async #publish(channel: ConfirmChannel, rows: readonly OutboxRecord[], window: Window): Promise<void> {
    for (const message of joinRows(rows)) {
      for (const id of message.ids) window.add(id);
      const body = Buffer.from(message.body, 'utf8');
      const signature = this.#o.signer.sign(body);
      const ok = channel.publish(
        this.#names.exchange,
        this.#names.routingKey(message.target, message.part),
        body,
        { persistent: true, contentType: 'application/json', headers: { [SIGNATURE_HEADERS.kid]: signature.kid, [SIGNATURE_HEADERS.sig]: signature.sig } },
        (error: unknown) => window.settle(message.ids, error === null || error === undefined),
      );
      // Flow control: the socket's buffer is full; wait for it to drain (or the channel to close).
      if (!ok) await new Promise<void>((resolve) => {
        channel.once('drain', resolve);
        channel.once('close', resolve);
      });
    }
  }

  /** Waits for a poke (new rows), a confirm, or the poll interval; returns at once for a poke that came while busy. */
  async #idle(signal: AbortSignal): Promise<void> {
    if (this.#poked) {
      this.#poked = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const cancel = this.#o.clock.setTimer(this.#o.pollMs, done);
      signal.addEventListener('abort', done, { once: true });
      this.#wake = done;
      function done() {
        cancel();
        signal.removeEventListener('abort', done);
        resolve();
      }
    });
    this.#wake = undefined;
    this.#poked = false;
  }

}

interface OutboxRecord {
  readonly id: string;
  readonly target: string;
  readonly part: number;
  /** A JSON array of envelopes. */
  readonly body: string;
  readonly changes: number;
}

/** Envelopes per message when rows are joined (a row alone may hold more: it is never split). */
const MESSAGE_MAX_CHANGES = 1000;
/** Bytes per message when rows are joined. */
const MESSAGE_MAX_BYTES = 1024 * 1024;

interface Message {
  readonly target: string;
  readonly part: number;
  readonly ids: string[];
  readonly body: string;
}

/** Joins the rows of each stream, in the order given, into bundles; joining is textual (no parse). */
export function joinRows(rows: readonly OutboxRecord[]): Message[] {
  interface Group { rows: OutboxRecord[]; changes: number; bytes: number }
  const open = new Map<string, Group>();
  const groups: Group[] = [];
  for (const row of rows) {
    const stream = `${row.target}\u0000${row.part}`;
    let group = open.get(stream);
    if (!group || group.changes + row.changes > MESSAGE_MAX_CHANGES || group.bytes + row.body.length > MESSAGE_MAX_BYTES) {
      group = { rows: [], changes: 0, bytes: 0 };
      open.set(stream, group);
      groups.push(group);
    }
    group.rows.push(row);
    group.changes += row.changes;
    group.bytes += row.body.length;
  }
  return groups.map(({ rows: group }) => {
    const first = group[0] as OutboxRecord;
    const body = group.length === 1 ? first.body : `[${group.map((r) => r.body.slice(1, -1)).join(',')}]`;
    return { target: first.target, part: first.part, ids: group.map((r) => r.id), body };
  });
}

/** Rows deleted per statement. */
const DELETE_CHUNK = 500;
/** Longest time between two reads from the oldest row while the window is never empty (late commits). */
const RESCAN_MS = 1000;

/** Outbox ids are decimal integers (as text, they may exceed 2^53): compared by length, then digits. */
function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * The publisher's unconfirmed and confirmed-but-not-deleted rows. Confirms arrive in publish order on a
 * channel, so `confirmed` is in id order of publishing.
 */
class Window {
  readonly #size: number;
  readonly #inFlight = new Set<string>();
  #confirmed: string[] = [];
  readonly #confirmedIds = new Set<string>();
  #nacked = false;
  #settledWaiters: (() => void)[] = [];
  onChange: () => void = () => undefined;

  constructor(size: number) {
    this.#size = size;
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }
  get confirmed(): readonly string[] {
    return this.#confirmed;
  }
  get nacked(): boolean {
    return this.#nacked;
  }
  /** Rows read and not yet deleted: a rescan reads this many more to find new ones. */
  get tracked(): number {
    return this.#inFlight.size + this.#confirmed.length;
  }
  get room(): number {
    return Math.max(0, this.#size - this.tracked);
  }
  has(id: string): boolean {
    return this.#inFlight.has(id) || this.#confirmedIds.has(id);
  }
  add(id: string): void {
    this.#inFlight.add(id);
  }
  settle(ids: readonly string[], ok: boolean): void {
    for (const id of ids) {
      if (!this.#inFlight.delete(id)) continue;
      if (ok) {
        this.#confirmed.push(id);
        this.#confirmedIds.add(id);
      } else this.#nacked = true;
    }
    if (this.#inFlight.size === 0) for (const waiter of this.#settledWaiters.splice(0)) waiter();
    this.onChange();
  }
  deleted(count: number): void {
    for (const id of this.#confirmed.slice(0, count)) this.#confirmedIds.delete(id);
    this.#confirmed = this.#confirmed.slice(count);
  }
  /** Resolves when nothing is in flight any more, or `signal` aborts. */
  settled(signal: AbortSignal): Promise<void> {
    if (this.#inFlight.size === 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.#settledWaiters.push(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }
  /** After a nack: nothing in flight; the rows not deleted are read again. */
  reset(): void {
    this.#inFlight.clear();
    this.#nacked = false;
  }
}
