/**
 * The broker side: the names of a topology's exchanges and queues, their declaration, and one AMQP
 * connection (amqplib, loaded lazily).
 *
 * Declared on every connect, by every relay, for the whole topology (idempotent; no state is left to a
 * plugin or an operator, and a relay that starts first never publishes into a queue that does not exist):
 * - `baton.relay.<name>`: direct exchange; routing key `<node>.<partition>`; its alternate exchange
 *   `baton.relay.<name>.unroutable` (fanout) feeds the quorum queue of the same name, so a message nobody
 *   is bound for is kept, not dropped;
 * - per node and partition, the quorum queue `baton.relay.<name>.<node>.<partition>`: durable, single
 *   active consumer (one relay consumes a partition at a time, in order), dead-lettering at-least-once to
 *   `baton.relay.<name>.dlx` (fanout) → quorum queue `baton.relay.<name>.dead`, a delivery limit, a length
 *   cap that refuses publishes (`reject-publish`: changes then wait in the outbox) rather than dropping.
 * No queue is exclusive or auto-delete; every message is persistent.
 */
import type { Channel, ChannelModel } from 'amqplib';
import { BrokerUnavailableError } from './errors.js';
import type { Topology } from './topology.js';
import { amqpNames } from './amqp-names.js';
import { loadDriver } from '../core/driver.js';

/** Declares every exchange, queue and binding of the topology (see the module comment). */
export async function declareTopology(channel: Channel, topology: Topology): Promise<void> {
  const names = amqpNames(topology);
  const quorum = { durable: true, arguments: { 'x-queue-type': 'quorum' } };
  await channel.assertExchange(names.unroutableExchange, 'fanout', { durable: true, autoDelete: false });
  await channel.assertQueue(names.unroutableQueue, quorum);
  await channel.bindQueue(names.unroutableQueue, names.unroutableExchange, '');
  await channel.assertExchange(names.deadLetterExchange, 'fanout', { durable: true, autoDelete: false });
  await channel.assertQueue(names.deadLetterQueue, quorum);
  await channel.bindQueue(names.deadLetterQueue, names.deadLetterExchange, '');
  await channel.assertExchange(names.exchange, 'direct', { durable: true, autoDelete: false, alternateExchange: names.unroutableExchange });
  for (const node of topology.nodes) {
    for (let p = 0; p < topology.partitions; p++) {
      await channel.assertQueue(names.queue(node.id, p), {
        durable: true,
        exclusive: false,
        autoDelete: false,
        arguments: {
          'x-queue-type': 'quorum',
          'x-single-active-consumer': true,
          'x-dead-letter-exchange': names.deadLetterExchange,
          // at-least-once dead-lettering needs reject-publish: a full queue refuses, never drops.
          'x-dead-letter-strategy': 'at-least-once',
          'x-overflow': 'reject-publish',
          'x-max-length': topology.maxLength,
          'x-delivery-limit': topology.deliveryLimit,
        },
      });
      await channel.bindQueue(names.queue(node.id, p), names.exchange, names.routingKey(node.id, p));
    }
  }
}

/**
 * Deletes every exchange and queue of the topology, with the messages in them: for tearing down a test or
 * benchmark topology, or retiring one (an operator's decision — a running relay declares it all again).
 */
export async function deleteTopology(channel: Channel, topology: Topology): Promise<void> {
  const names = amqpNames(topology);
  for (const node of topology.nodes) for (let p = 0; p < topology.partitions; p++) await channel.deleteQueue(names.queue(node.id, p));
  for (const queue of [names.deadLetterQueue, names.unroutableQueue]) await channel.deleteQueue(queue);
  for (const exchange of [names.exchange, names.deadLetterExchange, names.unroutableExchange]) await channel.deleteExchange(exchange);
}

/**
 * Opens one connection. The 'error' listener is attached at once (an unhandled one would crash the
 * process); the caller learns of the end through `closed`.
 * @throws BrokerUnavailableError.
 */
export async function openAmqp(url: string, label: string): Promise<{ connection: ChannelModel; closed: Promise<Error | undefined> }> {
  const amqp = await loadDriver('amqplib', 'relay (RabbitMQ)', () => import('amqplib'));
  let connection: ChannelModel;
  // A 10 s heartbeat unless the URL says otherwise: a broker gone silent (a partition, a paused VM) is noticed
  // in about 20 s instead of the server's default minutes.
  const withHeartbeat = /[?&]heartbeat=/.test(url) ? url : `${url}${url.includes('?') ? '&' : '?'}heartbeat=10`;
  try {
    connection = await (amqp.default ?? amqp).connect(withHeartbeat, { timeout: 10_000 });
  } catch (error) {
    throw new BrokerUnavailableError(`${label}: cannot connect: ${(error as Error).message}`, { cause: error });
  }
  let lastError: Error | undefined;
  connection.on('error', (error: Error) => (lastError = error));
  const closed = new Promise<Error | undefined>((resolve) => connection.once('close', (error?: Error) => resolve(error ?? lastError)));
  return { connection, closed };
}


/** A channel's end as a promise; listening to 'error' keeps a channel error from crashing the process. */
export function channelClosed(channel: Channel): Promise<Error | undefined> {
  let lastError: Error | undefined;
  channel.on('error', (error: Error) => (lastError = error));
  return new Promise((resolve) => channel.once('close', () => resolve(lastError)));
}
