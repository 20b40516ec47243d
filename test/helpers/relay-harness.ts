/**
 * Relays and emitting clients of a test topology, and the convergence check every relay test ends with.
 */
import { expect } from 'vitest';
import type { Logger } from '../../src/core/logger.js';
import { openRelayClient, startRelay, type Relay, type RelayClient } from '../../src/relay/index.js';
import type { Topology } from '../../src/relay/topology.js';
import { AMQP_URL, KEYS, count, ledger, waitUntil, type TestDatabase } from './relay-fixture.js';

export class RelayHarness {
  readonly relays = new Map<string, Relay>();
  readonly clients = new Map<string, RelayClient>();
  constructor(
    readonly topology: Topology,
    readonly log: Logger & { lines: string[] },
  ) {}

  async start(nodes: readonly string[], options: { pollInterval?: string } = {}): Promise<void> {
    for (const node of nodes) {
      this.relays.set(node, await startRelay({ topology: this.topology, node, amqpUrl: AMQP_URL, keys: KEYS, logger: this.log, batchSize: 200, ...options }));
    }
  }

  async client(node: string): Promise<RelayClient> {
    let client = this.clients.get(node);
    if (!client) this.clients.set(node, (client = await openRelayClient({ topology: this.topology, node, app: 'test' })));
    return client;
  }

  /**
   * Emits `changes` changes per key at `node`, values 1..changes, keys `<node>-<i>`, one transaction each;
   * pauses `pauseMs` after each round of keys (to spread a stream over an outage).
   */
  async emit(node: string, keys: number, changes: number, options: { routingKey?: string; pauseMs?: number } = {}): Promise<void> {
    const client = await this.client(node);
    for (let v = 1; v <= changes; v++) {
      for (let k = 0; k < keys; k++) {
        await client.transaction((tx) => client.emit(tx, 'put', { k: `${node}-${k}`, v }, { key: `${node}-${k}`, routingKey: options.routingKey ?? 'eu.orders' }));
      }
      if (options.pauseMs) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.relays.values()].map((r) => r.close()));
    await Promise.all([...this.clients.values()].map((c) => c.close()));
    this.relays.clear();
    this.clients.clear();
  }
}

/** What a node's ledger must hold: per origin, `keys` keys with values 1..changes. */
export function expectedLedger(origins: readonly string[], keys: number, changes: number): Map<string, number[]> {
  const expected = new Map<string, number[]>();
  for (const origin of origins) for (let k = 0; k < keys; k++) expected.set(`${origin}-${k}`, Array.from({ length: changes }, (_, i) => i + 1));
  return expected;
}

async function outboxesEmpty(databases: ReadonlyMap<string, TestDatabase>, nodes: readonly string[]): Promise<boolean> {
  for (const node of nodes) if ((await count(databases.get(node)!, 'SELECT COUNT(*) AS n FROM relay_outbox')) !== 0) return false;
  return true;
}

/**
 * Waits until every node's ledger has as many rows as expected and every outbox is empty, then asserts
 * each ledger is exactly the expected one (every change once, in per-key order) and no change is held.
 */
export async function expectConverged(
  databases: ReadonlyMap<string, TestDatabase>,
  expected: ReadonlyMap<string, Map<string, number[]>>,
  log: { lines: string[] },
  timeoutMs = 60_000,
): Promise<void> {
  const nodes = [...expected.keys()];
  const done = await waitUntil(async () => {
    for (const [node, want] of expected) {
      const have = await ledger(databases.get(node)!);
      let total = 0;
      for (const list of have.values()) total += list.length;
      let wanted = 0;
      for (const list of want.values()) wanted += list.length;
      if (total < wanted) return false;
    }
    return outboxesEmpty(databases, nodes);
  }, timeoutMs);
  if (!done) console.error(log.lines.slice(-40).join('\n'));
  for (const [node, want] of expected) {
    const have = await ledger(databases.get(node)!);
    expect(Object.fromEntries(have), `ledger of ${node}`).toEqual(Object.fromEntries(want));
    expect(await count(databases.get(node)!, 'SELECT COUNT(*) AS n FROM relay_held'), `held at ${node}`).toBe(0);
  }
  expect(await outboxesEmpty(databases, nodes)).toBe(true);
}
