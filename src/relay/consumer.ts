/**
 * The consumer of one partition queue of a node: a channel of its own (so that `ack(…, multiple)` never
 * touches another partition), a bounded prefetch, messages processed strictly in delivery order.
 *
 * Each round takes what has arrived (whole messages, until they hold `batchSize` changes), rejects what
 * cannot be trusted — not an envelope or bundle of them, a bad signature, a loop, anywhere in the message
 * — to the dead-letter exchange (`requeue: false`), applies the rest in one transaction (inbox.ts), and
 * after the commit acks the last of them with `multiple: true`.
 *
 * Database down (or any failure that may pass: a deadlock, a lock timeout, a missing table): the batch is
 * rolled back, nothing is acked, and the same batch is tried again with backoff (100 ms → 5 s) while the
 * broker sends nothing more (prefetch is reached). The channel stays open on purpose: closing it would
 * return the messages and count a delivery against the queue's delivery limit each time, so a long or
 * flapping outage would end up dead-lettering healthy messages. Nothing is applied out of order: the batch
 * is retried as it is, and a message redelivered after a broker or relay failure is recognised by the inbox.
 */
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { Backoff } from '../core/backoff.js';
import { sleep, type Clock } from '../core/clock.js';
import { toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { channelClosed } from './amqp-connection.js';
import { amqpNames } from './amqp-names.js';
import { parseMessage } from './envelope.js';
import { RelayDatabaseError } from './errors.js';
import type { Applier, ApplyResult, Incoming } from './inbox.js';
import { SIGNATURE_HEADERS, type Signer } from './signature.js';
import type { Topology } from './topology.js';

export interface PartitionConsumerOptions {
  readonly topology: Topology;
  readonly node: string;
  readonly partition: number;
  readonly applier: Applier;
  readonly signer: Signer;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly batchSize: number;
  /** Called after each committed batch (metrics, poking the publisher). */
  readonly onApplied: (result: ApplyResult) => void;
  /** Called for each message sent to the dead-letter exchange. */
  readonly onRejected: (reason: string) => void;
  /** Called with the error when a batch cannot be applied (it will be retried), and with null once one is. */
  readonly onApplyFailure: (error: RelayDatabaseError | null) => void;
}

export class PartitionConsumer {
  readonly #o: PartitionConsumerOptions;
  readonly #queue: string;

  constructor(options: PartitionConsumerOptions) {
    this.#o = options;
    this.#queue = amqpNames(options.topology).queue(options.node, options.partition);
  }

  /**
   * Consumes until `signal` aborts (returns) or the channel ends (throws the reason).
   */
  async run(connection: ChannelModel, signal: AbortSignal): Promise<void> {
    const channel = await connection.createChannel();
    const closed = channelClosed(channel);
    const buffer: ConsumeMessage[] = [];
    let ended: Error | undefined;
    let wake: (() => void) | undefined;
    // Aborted when the relay closes or the channel ends: stops a retry's wait at once.
    const stop = new AbortController();
    let open = true;
    void closed.then((error) => {
      open = false;
      ended ??= error ?? new Error(`channel of ${this.#queue} closed`);
      stop.abort();
      wake?.();
    });
    const onAbort = () => {
      stop.abort();
      wake?.();
    };
    signal.addEventListener('abort', onAbort);
    try {
      // In messages: a bundle holds up to 1,000 changes, one envelope at least.
      await channel.prefetch(Math.max(16, Math.ceil(this.#o.batchSize / 4)));
      await channel.consume(
        this.#queue,
        (message) => {
          if (message === null) {
            // The broker cancelled us (queue deleted, leader moved): start again on a new channel.
            ended ??= new Error(`consumer of ${this.#queue} cancelled by the broker`);
            stop.abort();
          } else buffer.push(message);
          wake?.();
        },
        { noAck: false, exclusive: false },
      );
      while (!signal.aborted && ended === undefined) {
        if (buffer.length === 0) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        await this.#process(channel, buffer, stop.signal);
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      // Returns the unacked messages to the queue, in order (also after a broker-side cancel, which leaves it open).
      if (open) await channel.close().catch(() => undefined); // the connection may be gone already
    }
    if (ended !== undefined && !signal.aborted) throw ended;
  }

  /**
   * Applies the messages at the front of `buffer` — whole messages, until they hold `batchSize` changes —
   * retrying a failed apply until it commits or `stop` aborts; then acks.
   */
  async #process(channel: Channel, buffer: ConsumeMessage[], stop: AbortSignal): Promise<void> {
    const incoming: Incoming[] = [];
    let last: ConsumeMessage | undefined;
    while (buffer.length > 0 && incoming.length < this.#o.batchSize) {
      const message = buffer.shift() as ConsumeMessage;
      try {
        const headers = message.properties.headers ?? {};
        this.#o.signer.verify(message.content, headers[SIGNATURE_HEADERS.kid], headers[SIGNATURE_HEADERS.sig]);
        const envelopes = parseMessage(message.content);
        for (const envelope of envelopes) {
          if (envelope.visited.includes(this.#o.node)) throw new Error(`envelope ${envelope.id}: already visited ${this.#o.node} (a loop)`);
        }
        for (const envelope of envelopes) incoming.push({ envelope });
        last = message;
      } catch (error) {
        // Untrusted, and so is the rest of its message: never applied, never forwarded. The broker moves it to the dead-letter queue.
        const reason = toError(error).message;
        this.#o.logger.warn({ queue: this.#queue, reason }, 'relay: message dead-lettered');
        if (!settle(() => channel.reject(message, false))) return; // channel gone: everything comes back anyway
        this.#o.onRejected(reason);
      }
    }
    if (incoming.length === 0 || !last) return;
    let result: ApplyResult | undefined;
    const backoff = new Backoff({ initialMs: 100, maxMs: 5000 });
    while (result === undefined) {
      try {
        result = await this.#o.applier.apply(incoming);
      } catch (error) {
        // Nothing committed and nothing acked: the same batch goes again, in the same order.
        this.#o.onApplyFailure(error instanceof RelayDatabaseError ? error : new RelayDatabaseError(toError(error).message, true, { cause: error }));
        await sleep(this.#o.clock, backoff.next(), stop).catch(() => undefined);
        // Stopping (close, or the channel is gone): the broker returns the unacked messages to the queue.
        if (stop.aborted) return;
      }
    }
    this.#o.onApplyFailure(null);
    // After the commit: every message up to the last one of this batch is done (rejected ones already settled).
    // If the channel is gone the ack is lost: the batch comes back and the inbox recognises it.
    settle(() => channel.ack(last, true));
    this.#o.onApplied(result);
  }
}

/** Runs an ack or reject; false when the channel was already closed (amqplib throws IllegalOperationError). */
function settle(fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch {
    return false;
  }
}
