/**
 * The names of a topology's exchanges and queues (see amqp-connection.ts for what each is). Apart from the
 * connection module so that the public declarations of `baton-fleet/relay` do not need amqplib's types.
 */
import type { Topology } from './topology.js';

export interface AmqpNames {
  readonly exchange: string;
  readonly unroutableExchange: string;
  readonly unroutableQueue: string;
  readonly deadLetterExchange: string;
  readonly deadLetterQueue: string;
  queue(node: string, partition: number): string;
  routingKey(node: string, partition: number): string;
}

export function amqpNames(topology: Pick<Topology, 'name'>): AmqpNames {
  const prefix = `baton.relay.${topology.name}`;
  return {
    exchange: prefix,
    unroutableExchange: `${prefix}.unroutable`,
    unroutableQueue: `${prefix}.unroutable`,
    deadLetterExchange: `${prefix}.dlx`,
    deadLetterQueue: `${prefix}.dead`,
    queue: (node, partition) => `${prefix}.${node}.${partition}`,
    routingKey: (node, partition) => `${node}.${partition}`,
  };
}
