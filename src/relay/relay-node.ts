/**
 * One relay: the process in front of one node's database. It consumes the node's partition queues
 * (consumer.ts → inbox.ts), publishes the node's outbox (publisher.ts) when elected, and keeps both going
 * through broker and database outages.
 *
 * Guarantees:
 * - broker gone: every channel ends, nothing is acked that was not committed; the relay reconnects with
 *   jittered exponential backoff (100 ms → 5 s), declares the whole topology again, and resumes consuming
 *   (unacked messages come back in order) and publishing (rows still in the outbox go out again);
 * - database gone: each partition retries its batch with backoff and takes no new message until it commits
 *   (see consumer.ts: its channel stays open, so no delivery is counted against the delivery limit);
 * - `close()` stops consuming and publishing, lets a batch in progress commit and be acked, closes the
 *   connection and the database, and resolves when nothing is left running. Safe to call twice.
 * Non-guarantees: a change committed whose ack was lost is delivered again (and recognised by the inbox);
 * latency during an outage is the outage plus one backoff step.
 */
import type { ChannelModel } from 'amqplib';
import { Backoff } from '../core/backoff.js';
import { sleep, systemClock, type Clock } from '../core/clock.js';
import { ConfigError, toError } from '../core/errors.js';
import { parseDuration, type Duration } from '../core/duration.js';
import { defaultLogger, type Logger } from '../core/logger.js';
import { declareTopology, openAmqp } from './amqp-connection.js';
import { amqpNames } from './amqp-names.js';
import { redactUrl } from '../core/redact.js';
import { PartitionConsumer } from './consumer.js';
import { openRelayDatabase, type RelayDatabaseOptions } from './database.js';
import type { RelayDatabase } from './dialects/dialect.js';
import { RelayDatabaseError } from './errors.js';
import { Applier, type ApplyResult } from './inbox.js';
import { OutboxPublisher } from './publisher.js';
import { Signer, type SigningKeys } from './signature.js';
import type { Topology } from './topology.js';

export interface RelayOptions {
  readonly topology: Topology;
  /** The node this relay serves (its database comes from the topology). */
  readonly node: string;
  /** `amqp://user:pass@host:5672/vhost`. */
  readonly amqpUrl: string;
  readonly keys: SigningKeys;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Aborting it closes the relay, as `close()` does. */
  readonly signal?: AbortSignal;
  /**
   * Messages applied per database transaction (and outbox rows per confirm window). Default 500. Larger
   * batches raise throughput and the cost of redoing a batch after a failure; prefetch is twice this.
   */
  readonly batchSize?: number;
  /**
   * How often an idle publisher looks at the outbox anyway. Default 20ms. Its own relay's commits wake it at
   * once, and so do applications' commits on PostgreSQL (NOTIFY); elsewhere they wait for this poll. Shorter
   * costs a query per interval per idle node; longer delays changes emitted on MySQL/MariaDB or SQLite.
   */
  readonly pollInterval?: Duration;
  /** Options of the node's database connections. */
  readonly database?: RelayDatabaseOptions;
  /**
   * How long inbox rows are kept (checked every min(1h, retention / 4)). Default 1 hour. Deduplication does
   * not depend on it: once a change is applied (or parked) its key's version covers it, and a later copy is
   * recorded `stale`, never applied; held changes are never purged. What it bounds is the per-change audit
   * trail: longer keeps more history, at one row per change received (18 million an hour at 5,000/s).
   */
  readonly inboxRetention?: Duration;
}

export type RelayState = 'starting' | 'running' | 'closing' | 'closed';

export interface RelayStatus {
  readonly node: string;
  readonly level: string;
  readonly state: RelayState;
  readonly brokerConnected: boolean;
  /**
   * False while a partition cannot apply its batch for a reason that may pass — the database unreachable,
   * a deadlock, a schema that does not fit the statements — and so consumes nothing more until it can.
   */
  readonly databaseUp: boolean;
  /** The last such failure, while it lasts. */
  readonly lastError: string | null;
  /** True while this process is the node's elected outbox publisher. */
  readonly publisher: boolean;
  /** Counters since start. */
  readonly applied: number;
  readonly forwarded: number;
  readonly published: number;
  readonly deadLettered: number;
  /** Wall ms from creation at the origin to commit here, of the newest change of the last batch. */
  readonly lagMs: number | null;
  /** Read now from the database (null when it cannot be read). */
  readonly outboxDepth: number | null;
  readonly heldDepth: number | null;
  readonly parkedDepth: number | null;
  /** Read now from the broker (null when not connected): ready messages of this node's queues, the dead-letter and unroutable queues. */
  readonly queueDepth: number | null;
  readonly deadLetterDepth: number | null;
  readonly unroutableDepth: number | null;
}

export interface Relay {
  readonly state: RelayState;
  status(): Promise<RelayStatus>;
  close(): Promise<void>;
}

/**
 * Starts a relay for `node`: opens its database (creating the relay tables), connects to the broker in
 * the background and starts consuming and publishing. Resolves once the database schema is in place.
 *
 * A database that cannot be reached yet (a transient error: refused, timed out, starting up) is waited
 * for, with backoff (100 ms → 5 s) and a warning at the first failure and every minute, until it answers
 * or `signal` aborts — a relay started with its database down (a host booting, an outage) does not exit.
 * @throws ConfigError (unknown node, bad option), RelayDatabaseError (the database refused for good:
 *   authentication, privileges, a bad URL), the signal's reason when it aborted while waiting.
 */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const node = options.topology.node(options.node);
  const batchSize = options.batchSize ?? 500;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 5000) throw new ConfigError(`batchSize: must be an integer from 1 to 5000, got ${batchSize}`);
  const pollMs = parseDuration(options.pollInterval ?? 20, 'pollInterval');
  const retentionMs = parseDuration(options.inboxRetention ?? '1h', 'inboxRetention');
  if (retentionMs < 60_000) throw new ConfigError(`inboxRetention: must be at least 1m, got ${retentionMs}ms`);
  if (pollMs < 1) throw new ConfigError('pollInterval: must be at least 1ms');
  if (typeof options.amqpUrl !== 'string' || !/^amqps?:\/\//i.test(options.amqpUrl)) throw new ConfigError('amqpUrl: must be an amqp:// or amqps:// URL');
  const signer = new Signer(options.keys);
  const logger = (options.logger ?? (await defaultLogger())).child({ relay: options.topology.name, node: node.id });
  const clock = options.clock ?? systemClock;
  const db = await openRelayDatabase(node.database, { poolSize: options.topology.partitions + 2, clock, ...options.database });
  try {
    await untilReachable(() => db.ensureSchema(), { clock, logger, signal: options.signal, what: db.label });
  } catch (error) {
    await db.close();
    throw error;
  }
  const relay = new RelayNode({ ...options, clock: options.clock ?? systemClock, logger, batchSize, pollMs, retentionMs, signer, db });
  relay.start();
  return relay;
}

/** Retries `fn` while it fails with a transient RelayDatabaseError. */
async function untilReachable(fn: () => Promise<void>, o: { clock: Clock; logger: Logger; signal: AbortSignal | undefined; what: string }): Promise<void> {
  const backoff = new Backoff({ initialMs: 100, maxMs: 5000 });
  let warnedAt = -Infinity;
  for (;;) {
    o.signal?.throwIfAborted();
    try {
      await fn();
      if (warnedAt > -Infinity) o.logger.warn({}, `relay: ${o.what} answers; starting`);
      return;
    } catch (error) {
      if (!(error instanceof RelayDatabaseError) || !error.transient) throw error;
      if (o.clock.monotonic() - warnedAt >= 60_000) {
        warnedAt = o.clock.monotonic();
        o.logger.warn({ err: error }, `relay: ${o.what} cannot be reached; waiting for it before starting`);
      }
      await sleep(o.clock, backoff.next(), o.signal).catch(() => undefined);
    }
  }
}

interface Resolved extends RelayOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly batchSize: number;
  readonly pollMs: number;
  readonly retentionMs: number;
  readonly signer: Signer;
  readonly db: RelayDatabase;
}

class RelayNode implements Relay {
  readonly #o: Resolved;
  readonly #closed = new AbortController();
  readonly #publisher: OutboxPublisher;
  readonly #applier: Applier;
  #state: RelayState = 'starting';
  #running: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #connection: ChannelModel | undefined;
  /** Partitions whose last batch could not be applied yet. */
  readonly #failing = new Set<number>();
  #lastError: string | null = null;
  #applied = 0;
  #forwarded = 0;
  #deadLettered = 0;
  #lagMs: number | null = null;

  constructor(options: Resolved) {
    this.#o = options;
    this.#publisher = new OutboxPublisher({
      topology: options.topology,
      db: options.db,
      signer: options.signer,
      clock: options.clock,
      logger: options.logger,
      batchSize: Math.max(100, options.batchSize * 2),
      windowSize: Math.max(1000, options.batchSize * 8),
      pollMs: options.pollMs,
      lockRetryMs: 1000,
    });
    this.#applier = new Applier({ topology: options.topology, node: options.node, db: options.db, clock: options.clock, logger: options.logger });
    options.signal?.addEventListener('abort', () => void this.close(), { once: true });
  }

  get state(): RelayState {
    return this.#state;
  }

  start(): void {
    this.#running = Promise.all([this.#run(), this.#purge()]).then(() => undefined);
  }

  /** Deletes inbox rows older than the retention, a bounded batch at a time, until closed. */
  async #purge(): Promise<void> {
    const { clock, db, retentionMs, logger } = this.#o;
    const closed = this.#closed.signal;
    const everyMs = Math.min(3_600_000, Math.floor(retentionMs / 4));
    while (!closed.aborted) {
      await sleep(clock, everyMs, closed).catch(() => undefined);
      for (let round = 0; round < 100 && !closed.aborted; round++) {
        try {
          const { affected } = await db.query(db.sql.purgeInbox, [Math.floor(clock.now() - retentionMs), 10_000]);
          if (affected < 10_000) break;
        } catch (error) {
          logger.warn({ err: toError(error) }, 'relay: inbox purge failed; trying again later');
          break;
        }
      }
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#state = 'closing';
      this.#closed.abort();
      await this.#running;
      await this.#o.db.close();
      this.#state = 'closed';
    })();
    return this.#closing;
  }

  async status(): Promise<RelayStatus> {
    const { topology, node } = this.#o;
    const depths = await this.#o.db
      .query(this.#o.db.sql.depths)
      .then(({ rows }) => new Map(rows.map((r) => [String(r.t), Number(r.n)])))
      .catch(() => undefined);
    let broker: { queue: number; dead: number; unroutable: number } | undefined;
    const connection = this.#connection;
    if (connection) {
      try {
        const names = amqpNames(topology);
        const channel = await connection.createChannel();
        channel.on('error', () => undefined);
        try {
          let queue = 0;
          for (let p = 0; p < topology.partitions; p++) queue += (await channel.checkQueue(names.queue(node, p))).messageCount;
          const dead = (await channel.checkQueue(names.deadLetterQueue)).messageCount;
          const unroutable = (await channel.checkQueue(names.unroutableQueue)).messageCount;
          broker = { queue, dead, unroutable };
        } finally {
          await channel.close().catch(() => undefined);
        }
      } catch {
        broker = undefined; // not connected after all; the depths read as null
      }
    }
    return {
      node,
      level: topology.node(node).level,
      state: this.#state,
      brokerConnected: this.#connection !== undefined,
      databaseUp: this.#failing.size === 0,
      lastError: this.#lastError,
      publisher: this.#publisher.leader,
      applied: this.#applied,
      forwarded: this.#forwarded,
      published: this.#publisher.published,
      deadLettered: this.#deadLettered,
      lagMs: this.#lagMs,
      outboxDepth: depths?.get('outbox') ?? null,
      heldDepth: depths?.get('held') ?? null,
      parkedDepth: depths?.get('parked') ?? null,
      queueDepth: broker?.queue ?? null,
      deadLetterDepth: broker?.dead ?? null,
      unroutableDepth: broker?.unroutable ?? null,
    };
  }

  /** Connects, runs a session until the connection ends, and again, until closed. */
  async #run(): Promise<void> {
    const { clock, logger, amqpUrl } = this.#o;
    const label = `relay ${this.#o.node} → ${redactUrl(amqpUrl)}`;
    const backoff = new Backoff({ initialMs: 100, maxMs: 5000 });
    const closed = this.#closed.signal;
    while (!closed.aborted) {
      let session: Awaited<ReturnType<typeof openAmqp>>;
      try {
        session = await openAmqp(amqpUrl, label);
      } catch (error) {
        logger.warn({ err: toError(error) }, 'relay: broker unavailable; reconnecting');
        await sleep(clock, backoff.next(), closed).catch(() => undefined);
        continue;
      }
      try {
        await this.#declare(session.connection);
      } catch (error) {
        await session.connection.close().catch(() => undefined); // the declaration failed: start over on a new connection
        // PRECONDITION_FAILED here means a queue exists with other arguments (partitions, limits changed).
        logger.warn({ err: toError(error) }, 'relay: cannot declare the topology on the broker; retrying');
        await sleep(clock, backoff.next(), closed).catch(() => undefined);
        continue;
      }
      backoff.reset();
      this.#state = closed.aborted ? this.#state : 'running';
      this.#connection = session.connection;
      logger.info({}, 'relay: connected to the broker');
      const sessionEnd = new AbortController();
      const endSession = () => sessionEnd.abort();
      closed.addEventListener('abort', endSession, { once: true });
      void session.closed.then((error) => {
        if (!closed.aborted) logger.warn({ err: error ? toError(error) : undefined }, 'relay: broker connection lost; reconnecting');
        sessionEnd.abort();
      });
      const tasks = [
        this.#runPublisher(session.connection, sessionEnd.signal),
        ...Array.from({ length: this.#o.topology.partitions }, (_, p) => this.#runPartition(session.connection, p, sessionEnd.signal)),
      ];
      await Promise.all(tasks);
      closed.removeEventListener('abort', endSession);
      this.#connection = undefined;
      await session.connection.close().catch(() => undefined); // already closed when the broker went away
      if (!closed.aborted) await sleep(clock, backoff.next(), closed).catch(() => undefined);
    }
  }

  /** Runs the publisher until the session ends; a channel it lost (the connection still up) is opened again. */
  async #runPublisher(connection: ChannelModel, signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ initialMs: 100, maxMs: 5000 });
    while (!signal.aborted) {
      try {
        await this.#publisher.run(connection, signal);
        backoff.reset();
      } catch (error) {
        if (signal.aborted) return;
        this.#o.logger.warn({ err: toError(error) }, 'relay publisher: channel ended; publishing again');
        await sleep(this.#o.clock, backoff.next(), signal).catch(() => undefined);
      }
    }
  }

  async #runPartition(connection: ChannelModel, partition: number, signal: AbortSignal): Promise<void> {
    const { clock, logger } = this.#o;
    const backoff = new Backoff({ initialMs: 100, maxMs: 5000 });
    const consumer = new PartitionConsumer({
      topology: this.#o.topology,
      node: this.#o.node,
      partition,
      applier: this.#applier,
      signer: this.#o.signer,
      clock,
      logger,
      batchSize: this.#o.batchSize,
      onApplied: (result) => this.#onApplied(result),
      onRejected: () => this.#deadLettered++,
      onApplyFailure: (error) => this.#onApplyFailure(partition, error),
    });
    while (!signal.aborted) {
      try {
        await consumer.run(connection, signal);
        backoff.reset();
      } catch (error) {
        if (signal.aborted) return;
        logger.warn({ err: toError(error), partition }, 'relay: consumer channel ended; consuming again');
        await sleep(clock, backoff.next(), signal).catch(() => undefined);
        // The queue may have been deleted (a broker-side cancel, then 404 on consume): declare everything again.
        await this.#declare(connection).catch(() => undefined);
      }
    }
  }

  async #declare(connection: ChannelModel): Promise<void> {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined); // a declaration error rejects the call below
    try {
      await declareTopology(channel, this.#o.topology);
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  /** Tracks which partitions cannot apply (logged once per outage and partition, not per retry). */
  #onApplyFailure(partition: number, error: RelayDatabaseError | null): void {
    if (error === null) {
      if (this.#failing.delete(partition) && this.#failing.size === 0) {
        this.#lastError = null;
        this.#o.logger.warn({ partition }, 'relay: applying again; consumption resumed');
      }
      return;
    }
    this.#lastError = error.message;
    if (!this.#failing.has(partition)) {
      this.#failing.add(partition);
      this.#o.logger.warn({ err: error, partition }, 'relay: cannot apply; consumption paused, retrying the same batch with backoff');
    }
  }

  #onApplied(result: ApplyResult): void {
    this.#applied += result.applied.length;
    this.#forwarded += result.forwarded;
    const newest = result.applied.at(-1);
    if (newest) this.#lagMs = Math.max(0, this.#o.clock.now() - newest.createdAt);
    if (result.forwarded > 0) this.#publisher.poke();
  }
}
