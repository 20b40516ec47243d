/**
 * The relay through outages, on real services, A (PostgreSQL) → B (MariaDB) → C (PostgreSQL), changes
 * streaming from A while: the broker stops and starts (`rabbitmqctl stop_app` / `start_app`); B's relay,
 * a process of its own, is SIGKILLed mid-stream and restarted; C's database is unreachable for 30 s (a
 * TCP proxy cut). After each: every database holds each change exactly once in per-key order, inbox
 * counts match, nothing is held or left in an outbox.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { defineTopology, type Topology } from '../../src/relay/topology.js';
import { AMQP_URL, KEYS, STATEMENTS, count, createDatabase, deleteBrokerObjects, dropDatabase, recordingLogger, suffix, waitUntil, type TestDatabase } from '../helpers/relay-fixture.js';
import { RelayHarness, expectConverged, expectedLedger } from '../helpers/relay-harness.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const run = suffix();
const databases = new Map<string, TestDatabase>();
const topologies: Topology[] = [];
const log = recordingLogger();
const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

afterAll(async () => {
  for (const topology of topologies) await deleteBrokerObjects(topology).catch(() => undefined);
  for (const db of databases.values()) await dropDatabase(db).catch(() => undefined);
});

/** Fresh databases a (PostgreSQL), b (MariaDB), c (PostgreSQL) for one scenario, and its topology config. */
async function scenario(name: string, cUrl?: (db: TestDatabase) => string) {
  const a = await createDatabase('postgres', `relay_${run}_${name}_a`);
  const b = await createDatabase('mysql', `relay_${run}_${name}_b`);
  const c = await createDatabase('postgres', `relay_${run}_${name}_c`);
  databases.set(`${name}-a`, a).set(`${name}-b`, b).set(`${name}-c`, c);
  const config = {
    name: `o${run}${name}`,
    partitions: 2,
    levels: [
      { name: 'A', nodes: [{ id: 'a1', database: a.url }] },
      { name: 'B', nodes: [{ id: 'b1', database: b.url }] },
      { name: 'C', nodes: [{ id: 'c1', database: cUrl ? cUrl(c) : c.url }] },
    ],
    statements: STATEMENTS,
  };
  const topology = defineTopology(config);
  topologies.push(topology);
  const byNode = new Map([
    ['a1', a],
    ['b1', b],
    ['c1', c],
  ]);
  return { config, topology, byNode };
}

async function expectInbox(byNode: ReadonlyMap<string, TestDatabase>, applied: Record<string, number>): Promise<void> {
  for (const [node, n] of Object.entries(applied)) {
    expect(await count(byNode.get(node)!, "SELECT COUNT(*) AS n FROM relay_inbox WHERE status = 'applied'"), `inbox of ${node}`).toBe(n);
  }
}

describe('relay outages (A PostgreSQL → B MariaDB → C PostgreSQL)', () => {
  it('survives the broker stopping and starting mid-stream', async () => {
    const { topology, byNode } = await scenario('broker');
    const harness = new RelayHarness(topology, log);
    try {
      await harness.start(['a1', 'b1', 'c1']);
      const emitting = harness.emit('a1', 5, 60, { pauseMs: 50 }); // ~3 s of changes, still coming after the stop
      await wait(800);
      // A safety net that outlives this process: if the test run is killed between stop_app and start_app,
      // the broker still comes back within 2 minutes (start_app on a running broker does nothing).
      const net = spawn('sh', ['-c', 'sleep 120; rabbitmqctl start_app'], { detached: true, stdio: 'ignore' });
      net.unref();
      try {
        execFileSync('rabbitmqctl', ['stop_app'], { timeout: 60_000, stdio: 'ignore' });
        await wait(2000);
      } finally {
        execFileSync('rabbitmqctl', ['start_app'], { timeout: 120_000, stdio: 'ignore' });
        if (net.pid !== undefined) {
          try {
            process.kill(-net.pid, 'SIGKILL'); // its own process group: the sleep and the shell, nothing else
          } catch {
            // already gone
          }
        }
      }
      await emitting;
      const expected = expectedLedger(['a1'], 5, 60);
      await expectConverged(byNode, new Map([['a1', expected], ['b1', expected], ['c1', expected]]), log, 90_000);
      await expectInbox(byNode, { b1: 300, c1: 300 });
    } finally {
      await harness.close();
    }
  }, 180_000);

  it('survives a SIGKILL of a relay mid-batch', async () => {
    const { config, topology, byNode } = await scenario('kill');
    const harness = new RelayHarness(topology, log);
    const children: ChildProcess[] = [];
    const startB = async (): Promise<{ child: ChildProcess; applied: () => number }> => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/relay-process.ts', JSON.stringify({ config, node: 'b1', amqpUrl: AMQP_URL, keys: KEYS, batchSize: 50 })], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
      let applied = 0;
      await new Promise<void>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on('line', (text) => {
          const line = JSON.parse(text) as { type: string; applied?: number };
          if (line.type === 'ready') resolve();
          if (line.type === 'status') applied = line.applied ?? 0;
        });
        child.once('exit', (code) => reject(new Error(`relay b1 exited with ${code} before it was ready`)));
      });
      return { child, applied: () => applied };
    };
    try {
      await harness.start(['a1', 'c1']);
      const first = await startB();
      const emitting = harness.emit('a1', 10, 80, { pauseMs: 10 });
      // Kill it once it is well into the stream: batches are being applied as it dies.
      expect(await waitUntil(async () => first.applied() >= 150, 30_000)).toBe(true);
      first.child.kill('SIGKILL');
      await new Promise((resolve) => first.child.once('exit', resolve));
      await wait(500);
      const second = await startB();
      await emitting;
      const expected = expectedLedger(['a1'], 10, 80);
      await expectConverged(byNode, new Map([['a1', expected], ['b1', expected], ['c1', expected]]), log, 90_000);
      await expectInbox(byNode, { b1: 800, c1: 800 });
      second.child.kill('SIGTERM');
      await new Promise((resolve) => second.child.once('exit', resolve));
    } finally {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await harness.close();
    }
  }, 180_000);

  it('pauses while a database is unreachable for 30 s and resumes in order', async () => {
    const proxy = new TcpProxy('127.0.0.1', 5432);
    const port = await proxy.start();
    const { topology, byNode } = await scenario('dbdown', (db) => db.url.replace(':5432/', `:${port}/`));
    const harness = new RelayHarness(topology, log);
    try {
      await harness.start(['a1', 'b1', 'c1']);
      const emitting = harness.emit('a1', 5, 40, { pauseMs: 100 }); // ~4 s of changes
      await wait(1000);
      proxy.cut();
      await wait(30_000);
      const relayStatus = await harness.relays.get('c1')!.status();
      expect(relayStatus.databaseUp).toBe(false);
      proxy.restore();
      await emitting;
      const expected = expectedLedger(['a1'], 5, 40);
      await expectConverged(byNode, new Map([['a1', expected], ['b1', expected], ['c1', expected]]), log, 60_000);
      await expectInbox(byNode, { b1: 200, c1: 200 });
      expect((await harness.relays.get('c1')!.status()).databaseUp).toBe(true);

      // A relay started while its database is unreachable waits for it instead of failing, then catches up.
      await harness.relays.get('c1')!.close();
      harness.relays.delete('c1');
      proxy.cut();
      let started = false;
      const restarting = harness.start(['c1']).then(() => (started = true));
      await harness.emit('a1', 5, 10);
      await wait(3000);
      expect(started).toBe(false);
      proxy.restore();
      await restarting;
      const more = new Map([...expected].map(([key, values]) => [key, [...values, ...Array.from({ length: 10 }, (_, i) => i + 1)]]));
      await expectConverged(byNode, new Map([['a1', more], ['b1', more], ['c1', more]]), log, 60_000);
      await expectInbox(byNode, { b1: 250, c1: 250 });
    } finally {
      proxy.restore();
      await harness.close();
      await proxy.close();
    }
  }, 150_000);
});
