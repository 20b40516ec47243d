/**
 * The outbox publisher: one per database, elected by a database lock (PostgreSQL advisory lock, MySQL
 * `GET_LOCK`) held on a connection of its own, so a crashed publisher's lock is gone with its connection.
 * It reads the oldest outbox rows, publishes them persistent on a confirm channel, waits for the broker's
 * confirms, and only then deletes them.
 *
 * Guarantees: a row leaves the outbox only after the broker confirmed it (it is then in a durable quorum
 * queue, or in the unroutable queue); a nack, a lost channel or a lost database keeps the rows, which are
 * published again (the receivers' inbox makes the copy a no-op). Rows are sent in id order.
 * Non-guarantees: exclusivity is advisory — a publisher cut off from its database keeps the lock until the
 * server notices, and two publishers may briefly overlap; that costs duplicates, never a change or its
 * order (receivers dedupe by id and hold out-of-order changes by sequence number).
 */
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { Backoff } from '../../core/backoff.js';
import { sleep, type Clock } from '../../core/clock.js';
import { toError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { amqpNames, channelClosed, type AmqpNames } from './amqp-connection.js';
import type { RelayDatabase } from './dialects/dialect.js';
import type { Topology } from './topology.js';

export interface PublisherOptions {
  readonly topology: Topology;
  readonly db: RelayDatabase;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Rows read and published per round, then confirmed together (the confirm window). */
  readonly batchSize: number;
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

  async #drain(connection: ChannelModel, signal: AbortSignal, backoff: Backoff): Promise<void> {
    const channel = await connection.createConfirmChannel();
    const closed = channelClosed(channel);
    let channelGone = false;
    void closed.then(() => {
      channelGone = true;
      this.#wake?.();
    });
    try {
      while (!signal.aborted && !channelGone) {
        let rows: { id: string; target: string; part: number; body: string }[];
        try {
          rows = (await this.#o.db.query(this.#o.db.sql.readOutbox, [this.#o.batchSize])).rows.map((r) => ({
            id: String(r.id),
            target: String(r.target),
            part: Number(r.part),
            body: String(r.body),
          }));
        } catch (error) {
          this.#o.logger.warn({ err: toError(error) }, 'relay publisher: cannot read the outbox; retrying');
          await sleep(this.#o.clock, backoff.next(), signal).catch(() => undefined);
          continue;
        }
        if (rows.length === 0) {
          await this.#idle(signal);
          continue;
        }
        try {
          await this.#publish(channel, rows);
        } catch (error) {
          // Nacked (a full queue refuses publishes) or the channel closed: the rows stay and go again.
          if (channelGone) break;
          this.#o.logger.warn({ err: toError(error) }, 'relay publisher: the broker did not confirm every message; publishing them again');
          await sleep(this.#o.clock, backoff.next(), signal).catch(() => undefined);
          continue;
        }
        try {
          for (let i = 0; i < rows.length; i += 500) {
            const ids = rows.slice(i, i + 500).map((r) => r.id);
            await this.#o.db.query(this.#o.db.sql.deleteOutbox(ids.length), ids);
          }
        } catch (error) {
          // Confirmed but not deleted: they will be published again, and deduplicated by the receivers.
          this.#o.logger.warn({ err: toError(error) }, 'relay publisher: published rows not deleted; they will be sent again');
          await sleep(this.#o.clock, backoff.next(), signal).catch(() => undefined);
          continue;
        }
        this.#published += rows.length;
        backoff.reset();
      }
    } finally {
      if (!channelGone) await channel.close().catch(() => undefined); // the connection may be gone already
    }
    if (channelGone && !signal.aborted) throw (await closed) ?? new Error('publisher channel closed');
  }

  /** Publishes rows in order and waits for every confirm. @throws when one is nacked or the channel closes. */
  async #publish(channel: ConfirmChannel, rows: readonly { target: string; part: number; body: string }[]): Promise<void> {
    for (const row of rows) {
      const ok = channel.publish(this.#names.exchange, this.#names.routingKey(row.target, row.part), Buffer.from(row.body, 'utf8'), {
        persistent: true,
        contentType: 'application/json',
      });
      // Flow control: the socket's buffer is full; wait for it to drain (or the channel to close).
      if (!ok) await new Promise<void>((resolve) => {
        channel.once('drain', resolve);
        channel.once('close', resolve);
      });
    }
    await channel.waitForConfirms();
  }

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
