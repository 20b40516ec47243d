/**
 * A look at a relay topology from outside its relay processes — for `baton status`, a dashboard or an
 * alert — read from the nodes' databases and the broker: outbox, held and parked depths, the age of the
 * oldest unpublished change (the outbox lag), and the depths of each node's queues, of the dead-letter
 * queue and of the unroutable queue. Counters that live in a relay process (applied, forwarded, lag at
 * commit) are in `relay.status()` instead.
 *
 * Guarantees: read-only; every connection it opens is closed before it resolves, also on error; a node
 * or broker that cannot be read gives nulls and an `error`, never a rejection.
 */
import { systemClock, type Clock } from '../core/clock.js';
import { toError } from '../core/errors.js';
import { openAmqp } from './amqp-connection.js';
import { amqpNames } from './amqp-names.js';
import { redactUrl } from '../core/redact.js';
import { openRelayDatabase } from './database.js';
import type { Topology } from './topology.js';

export interface RelayInspection {
  readonly node: string;
  readonly level: string;
  readonly outboxDepth: number | null;
  /** Now minus the creation of the oldest outbox row: how far publishing is behind (0 when empty). */
  readonly outboxLagMs: number | null;
  readonly heldDepth: number | null;
  readonly parkedDepth: number | null;
  /** Ready messages in the node's partition queues. */
  readonly queueDepth: number | null;
  /** What could not be read, if anything. */
  readonly error: string | null;
}

export interface TopologyInspection {
  readonly nodes: readonly RelayInspection[];
  readonly deadLetterDepth: number | null;
  readonly unroutableDepth: number | null;
  readonly brokerError: string | null;
}

export async function inspectRelay(options: { readonly topology: Topology; readonly amqpUrl: string; readonly nodes?: readonly string[]; readonly clock?: Clock }): Promise<TopologyInspection> {
  const { topology } = options;
  const clock = options.clock ?? systemClock;
  const names = amqpNames(topology);
  const nodes = (options.nodes ?? topology.nodes.map((n) => n.id)).map((id) => topology.node(id));
  const queueDepths = new Map<string, number>();
  let deadLetterDepth: number | null = null;
  let unroutableDepth: number | null = null;
  let brokerError: string | null = null;
  try {
    const { connection } = await openAmqp(options.amqpUrl, `relay inspect → ${redactUrl(options.amqpUrl)}`);
    try {
      const channel = await connection.createChannel();
      channel.on('error', () => undefined); // a missing queue rejects checkQueue below
      for (const node of nodes) {
        let depth = 0;
        for (let p = 0; p < topology.partitions; p++) depth += (await channel.checkQueue(names.queue(node.id, p))).messageCount;
        queueDepths.set(node.id, depth);
      }
      deadLetterDepth = (await channel.checkQueue(names.deadLetterQueue)).messageCount;
      unroutableDepth = (await channel.checkQueue(names.unroutableQueue)).messageCount;
    } finally {
      await connection.close().catch(() => undefined);
    }
  } catch (error) {
    brokerError = toError(error).message;
  }
  const inspections: RelayInspection[] = [];
  for (const node of nodes) {
    let depths: Map<string, { n: number; oldest: number | null }> | undefined;
    let error: string | null = null;
    try {
      const db = await openRelayDatabase(node.database, { poolSize: 1, queryTimeoutMs: 10_000, clock });
      try {
        const { rows } = await db.query(db.sql.depths);
        depths = new Map(rows.map((r) => [String(r.t), { n: Number(r.n), oldest: r.oldest === null || r.oldest === undefined ? null : Number(r.oldest) }]));
      } finally {
        await db.close();
      }
    } catch (e) {
      error = toError(e).message;
    }
    const outbox = depths?.get('outbox');
    inspections.push({
      node: node.id,
      level: node.level,
      outboxDepth: outbox?.n ?? null,
      outboxLagMs: outbox ? (outbox.oldest === null ? 0 : Math.max(0, clock.now() - outbox.oldest)) : null,
      heldDepth: depths?.get('held')?.n ?? null,
      parkedDepth: depths?.get('parked')?.n ?? null,
      queueDepth: queueDepths.get(node.id) ?? null,
      error,
    });
  }
  return { nodes: inspections, deadLetterDepth, unroutableDepth, brokerError };
}
