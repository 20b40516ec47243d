/**
 * The relay on real services: RabbitMQ, PostgreSQL databases and a MariaDB database, created per test run
 * with a random suffix and dropped after. After each scenario every database holds exactly the expected
 * ledger (each change once, in per-key order), the inbox counts match, and no outbox, held or parked row
 * is left that should not be.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import amqp from 'amqplib';
import { defineTopology, type Topology, type TopologyConfig } from '../../src/relay/topology.js';
import { amqpNames } from '../../src/relay/amqp-names.js';
import { inspectRelay, openRelayDatabase, relayStatusProvider, startRelay } from '../../src/relay/index.js';
import { newChangeId, type Envelope } from '../../src/relay/envelope.js';
import { Signer } from '../../src/relay/signature.js';
import { systemClock } from '../../src/core/clock.js';
import { startMonitor, type Monitor } from '../../src/monitor/monitor.js';
import {
  AMQP_URL,
  KEYS,
  STATEMENTS,
  count,
  createDatabase,
  message,
  deleteBrokerObjects,
  dropDatabase,
  ledger,
  recordingLogger,
  sql,
  suffix,
  waitUntil,
  type Kind,
  type TestDatabase,
} from '../helpers/relay-fixture.js';
import { RelayHarness, expectConverged as converged, expectedLedger } from '../helpers/relay-harness.js';

const run = suffix();
const databases = new Map<string, TestDatabase>();
const topologies: Topology[] = [];
const log = recordingLogger();

async function database(node: string, kind: Kind): Promise<TestDatabase> {
  const db = await createDatabase(kind, `relay_${run}_${node}`);
  databases.set(node, db);
  return db;
}

afterAll(async () => {
  for (const topology of topologies) await deleteBrokerObjects(topology).catch(() => undefined);
  for (const db of databases.values()) await dropDatabase(db).catch(() => undefined);
});

describe('relay A → B → C with peers (3 PostgreSQL databases, 1 MariaDB)', () => {
  let topology: Topology;
  let harness: RelayHarness;

  beforeAll(async () => {
    const [a1, b1, b2, c1] = await Promise.all([database('a1', 'postgres'), database('b1', 'postgres'), database('b2', 'mysql'), database('c1', 'postgres')]);
    const config: TopologyConfig = {
      name: `t${run}`,
      partitions: 4,
      levels: [
        { name: 'A', nodes: [{ id: 'a1', database: a1!.url }] },
        { name: 'B', nodes: [{ id: 'b1', database: b1!.url, keys: ['eu.#'], peers: ['b2'] }, { id: 'b2', database: b2!.url, keys: ['eu.#'] }] },
        { name: 'C', nodes: [{ id: 'c1', database: c1!.url }] },
      ],
      statements: STATEMENTS,
    };
    topology = defineTopology(config);
    topologies.push(topology);
    harness = new RelayHarness(topology, log);
    await harness.start(['a1', 'b1', 'b2', 'c1']);
  });

  afterAll(async () => {
    await harness?.close();
  });

  it('propagates every change to each node of its route exactly once, in per-key order', async () => {
    // a1 → {b1 → c1, b2}; b1 → {b2, c1}; b2 (MariaDB) → {b1, c1}: all at once.
    await Promise.all([harness.emit('a1', 8, 25), harness.emit('b1', 4, 25), harness.emit('b2', 4, 25)]);
    const expected = new Map([
      ['a1', expectedLedger(['a1'], 8, 25)],
      ['b1', expectedLedger(['a1', 'b1', 'b2'], 8, 25)],
      ['b2', expectedLedger(['a1', 'b1', 'b2'], 8, 25)],
      ['c1', expectedLedger(['a1', 'b1', 'b2'], 8, 25)],
    ]);
    // b1 and b2 emitted 4 keys only: trim the expectation to what was emitted.
    for (const want of expected.values()) for (const key of [...want.keys()]) if (/^b[12]-([4-7])$/.test(key)) want.delete(key);
    await converged(databases, expected, log);
    // Inbox: one applied row per change received, no other status.
    const received = { a1: 0, b1: 8 * 25 + 4 * 25, b2: 8 * 25 + 4 * 25, c1: 8 * 25 + 2 * 4 * 25 };
    for (const [node, n] of Object.entries(received)) {
      const db = databases.get(node)!;
      expect(await count(db, "SELECT COUNT(*) AS n FROM relay_inbox WHERE status = 'applied'"), `inbox of ${node}`).toBe(n);
      expect(await count(db, "SELECT COUNT(*) AS n FROM relay_inbox WHERE status <> 'applied'"), `inbox of ${node}`).toBe(0);
      expect(await count(db, 'SELECT COUNT(*) AS n FROM relay_held')).toBe(0);
    }
    const status = await harness.relays.get('c1')!.status();
    expect(status).toMatchObject({ node: 'c1', level: 'C', state: 'running', brokerConnected: true, databaseUp: true, outboxDepth: 0, heldDepth: 0, parkedDepth: 0, queueDepth: 0 });
    expect(status.applied).toBe(received.c1);
  });

  it('parks a change that fails at one node, forwards a tombstone, and keeps the key flowing', async () => {
    const b1 = databases.get('b1')!;
    await sql(b1, "INSERT INTO uniq (k) VALUES ('taken')");
    const client = await harness.client('a1');
    await client.transaction(async (tx) => {
      await client.emit(tx, 'put', { k: 'poison', v: 1 }, { key: 'poison', routingKey: 'eu.x' });
      await client.emit(tx, 'unique', { k: 'taken' }, { key: 'poison', routingKey: 'eu.x' });
      await client.emit(tx, 'put', { k: 'poison', v: 3 }, { key: 'poison', routingKey: 'eu.x' });
    });
    // b1 parks seq 2 (duplicate key); c1 is below b1 and receives a tombstone instead; b2 applies all three.
    const parked = await waitUntil(async () => (await count(databases.get('c1')!, "SELECT COUNT(*) AS n FROM ledger WHERE k = 'poison'")) === 2, 30_000);
    expect(parked).toBe(true);
    const rows = await sql<{ statement: string; reason: string; seq: string | number }>(b1, 'SELECT statement, reason, seq FROM relay_parked');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ statement: 'unique' });
    expect(Number(rows[0]!.seq)).toBe(2);
    expect(rows[0]!.reason).toMatch(/23505/);
    expect(await count(databases.get('c1')!, "SELECT COUNT(*) AS n FROM relay_inbox WHERE k = 'poison' AND status = 'skipped'")).toBe(1);
    expect(await count(databases.get('b2')!, "SELECT COUNT(*) AS n FROM uniq WHERE k = 'taken'")).toBe(1);
    for (const node of ['b1', 'b2', 'c1']) expect((await ledger(databases.get(node)!)).get('poison'), node).toEqual([1, 3]);
  });

  it('keeps keys apart that differ only in case or trailing spaces (byte-exact on every database)', async () => {
    const client = await harness.client('a1');
    const keys = ['Kx', 'kx', 'kx ', 'kx  '];
    for (let v = 1; v <= 3; v++) {
      for (const key of keys) await client.transaction((tx) => client.emit(tx, 'put', { k: key, v }, { key, routingKey: 'eu.case' }));
    }
    for (const node of ['b1', 'b2', 'c1']) {
      const db = databases.get(node)!;
      expect(await waitUntil(async () => (await count(db, "SELECT COUNT(*) AS n FROM relay_inbox WHERE k LIKE 'Kx%' OR k LIKE 'kx%'")) === 12, 20_000), node).toBe(true);
      expect(await count(db, "SELECT COUNT(*) AS n FROM relay_inbox WHERE (k LIKE 'Kx%' OR k LIKE 'kx%') AND status = 'applied'"), node).toBe(12);
      const rows = await sql<{ k: string; v: number | string }>(db, "SELECT k, v FROM ledger WHERE k LIKE 'Kx%' OR k LIKE 'kx%' ORDER BY id");
      expect(rows.length, node).toBe(12);
    }
  });

  it('emits several changes in one call, a key several times, each in order (PostgreSQL and MariaDB origins)', async () => {
    for (const origin of ['a1', 'b2']) {
      const client = await harness.client(origin);
      const changes = [1, 2, 3, 4].flatMap((v) => ['m0', 'm1', 'm2'].map((k) => ({ statement: 'put', args: { k: `${origin}-${k}`, v }, key: `${origin}-${k}`, routingKey: 'eu.many' })));
      const emitted = await client.transaction((tx) => client.emitMany(tx, changes));
      expect(emitted.filter((_, i) => i % 3 === 0).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
      // A second call continues the numbering.
      const [next] = await client.transaction((tx) => client.emitMany(tx, [{ statement: 'put', args: { k: `${origin}-m0`, v: 5 }, key: `${origin}-m0`, routingKey: 'eu.many' }]));
      expect(next!.seq).toBe(5);
    }
    const want = (origin: string) => [
      [`${origin}-m0`, [1, 2, 3, 4, 5]],
      [`${origin}-m1`, [1, 2, 3, 4]],
      [`${origin}-m2`, [1, 2, 3, 4]],
    ] as const;
    const targets: Record<string, string[]> = { b1: ['a1', 'b2'], b2: ['a1'], c1: ['a1', 'b2'] };
    for (const [node, origins] of Object.entries(targets)) {
      const db = databases.get(node)!;
      const expected = origins.flatMap(want);
      expect(await waitUntil(async () => { const l = await ledger(db); return expected.every(([k, v]) => l.get(k)?.length === v.length); }, 20_000), node).toBe(true);
      const l = await ledger(db);
      for (const [k, v] of expected) expect(l.get(k), `${node} ${k}`).toEqual(v);
    }
    // A bad change anywhere in the call writes nothing.
    const client = await harness.client('a1');
    await expect(client.transaction((tx) => client.emitMany(tx, [
      { statement: 'put', args: { k: 'a1-m9', v: 1 }, key: 'a1-m9' },
      { statement: 'put', args: { k: 'a1-m9', v: 'x' }, key: 'a1-m9' },
    ]))).rejects.toThrow(/argument "v" must be integer/);
    expect((await ledger(databases.get('a1')!)).get('a1-m9')).toBeUndefined();
  });

  it('applies changes that arrive out of order in sequence order, and a duplicate once', async () => {
    const names = amqpNames(topology);
    const connection = await amqp.connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    const signer = new Signer(KEYS);
    const change = (seq: number): Envelope => ({
        v: 2,
        id: newChangeId(systemClock),
        origin: 'a1',
        app: 'test',
        key: 'late',
        seq,
        rk: 'eu.x',
        route: {},
        visited: ['a1', 'b1'],
        statement: 'put',
        args: { k: 'late', v: seq },
        createdAt: Date.now(),
      });
    const [one, two, three] = [change(1), change(2), change(3)];
    const publish = (envelopes: Envelope[]) => {
      const { content, options } = message(envelopes, signer);
      channel.publish(names.exchange, names.routingKey('c1', topology.partitionOf('late')), content, options);
    };
    try {
      // 3 and 2 overtake 1 (as a redelivery could), and 2 comes twice.
      publish([three!]);
      await channel.waitForConfirms();
      const c1 = databases.get('c1')!;
      expect(await waitUntil(async () => (await count(c1, "SELECT COUNT(*) AS n FROM relay_held WHERE k = 'late'")) === 1, 20_000)).toBe(true);
      publish([two!]);
      publish([two!, two!]);
      await channel.waitForConfirms();
      expect(await waitUntil(async () => (await count(c1, "SELECT COUNT(*) AS n FROM relay_held WHERE k = 'late'")) === 2, 20_000)).toBe(true);
      expect((await ledger(c1)).get('late')).toBeUndefined();
      publish([one!]);
      await channel.waitForConfirms();
      expect(await waitUntil(async () => (await ledger(c1)).get('late')?.length === 3, 20_000)).toBe(true);
      expect((await ledger(c1)).get('late')).toEqual([1, 2, 3]);
      expect(await count(c1, "SELECT COUNT(*) AS n FROM relay_held WHERE k = 'late'")).toBe(0);
      expect(await count(c1, "SELECT COUNT(*) AS n FROM relay_inbox WHERE k = 'late' AND status = 'applied'")).toBe(3);
    } finally {
      await connection.close();
    }
  });

  it('hands a node over to a standby relay at once when the active one closes', async () => {
    const standby = await startRelay({ topology, node: 'c1', amqpUrl: AMQP_URL, keys: KEYS, logger: log, batchSize: 50 });
    try {
      const emitting = harness.emit('a1', 4, 30, { routingKey: 'eu.handover', pauseMs: 20 });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await harness.relays.get('c1')!.close(); // the active consumer and publisher of c1 go away mid-stream
      harness.relays.delete('c1');
      await emitting;
      const want = new Map<string, number[]>();
      for (let k = 0; k < 4; k++) want.set(`a1-${k}`, [...Array.from({ length: 25 }, (_, i) => i + 1), ...Array.from({ length: 30 }, (_, i) => i + 1)]);
      // The keys a1-0..3 already hold 1..25 from the first test; this stream appends 1..30 to them.
      const c1 = databases.get('c1')!;
      expect(await waitUntil(async () => [...(await ledger(c1)).entries()].filter(([k]) => want.has(k)).every(([k, v]) => v.length === want.get(k)!.length), 30_000)).toBe(true);
      const have = await ledger(c1);
      for (const [k, v] of want) expect(have.get(k), k).toEqual(v);
      expect((await standby.status()).applied).toBeGreaterThan(0);
    } finally {
      harness.relays.set('c1', standby);
    }
  });

  it('purges old inbox rows in bounded batches, never a held change', async () => {
    for (const node of ['b1', 'b2']) {
      const db = await openRelayDatabase(databases.get(node)!.url);
      try {
        const before = await count(databases.get(node)!, 'SELECT COUNT(*) AS n FROM relay_inbox');
        const { affected } = await db.query(db.sql.purgeInbox, [Date.now() + 60_000, 7]);
        expect(affected, node).toBe(7);
        expect(await count(databases.get(node)!, 'SELECT COUNT(*) AS n FROM relay_inbox')).toBe(before - 7);
      } finally {
        await db.close();
      }
    }
  });

  it('pauses on a schema fault (a missing table) instead of parking the stream, and resumes once fixed', async () => {
    const c1 = databases.get('c1')!;
    const parkedBefore = await count(c1, 'SELECT COUNT(*) AS n FROM relay_parked');
    await sql(c1, 'ALTER TABLE ledger RENAME TO ledger_away');
    try {
      const client = await harness.client('a1');
      for (const v of [1, 2]) await client.transaction((tx) => client.emit(tx, 'put', { k: 'schema', v }, { key: 'schema', routingKey: 'eu.x' }));
      const relay = harness.relays.get('c1')!;
      expect(await waitUntil(async () => !(await relay.status()).databaseUp, 20_000)).toBe(true);
      expect((await relay.status()).lastError).toMatch(/42P01/);
      expect(await count(c1, 'SELECT COUNT(*) AS n FROM relay_parked')).toBe(parkedBefore);
    } finally {
      await sql(c1, 'ALTER TABLE ledger_away RENAME TO ledger');
    }
    expect(await waitUntil(async () => (await ledger(c1)).get('schema')?.length === 2, 20_000)).toBe(true);
    expect((await ledger(c1)).get('schema')).toEqual([1, 2]);
    const status = await harness.relays.get('c1')!.status();
    expect(status.databaseUp).toBe(true);
    expect(status.lastError).toBeNull();
  });

  it('dead-letters a bad or missing signature, a malformed envelope and a looping bundle; parks an unknown statement', async () => {
    const names = amqpNames(topology);
    const connection = await amqp.connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    const deadBefore = (await channel.checkQueue(names.deadLetterQueue)).messageCount;
    const signer = new Signer(KEYS);
    const forger = new Signer({ current: 'k1', keys: { k1: 'not-the-real-key-0123456789abcdefghij' } });
    const envelope = (statement: string, key: string, args: Record<string, string | number>): Envelope => ({
      v: 2,
      id: newChangeId(systemClock),
      origin: 'a1',
      app: 'attacker',
      key,
      seq: 1,
      rk: 'eu.x',
      route: {},
      visited: ['a1'],
      statement,
      args,
      createdAt: Date.now(),
    });
    const part = (key: string) => topology.partitionOf(key);
    const publish = (key: string, body: ReturnType<typeof message>) => channel.publish(names.exchange, names.routingKey('b1', part(key)), body.content, body.options);
    publish('forged', message([envelope('put', 'forged', { k: 'forged', v: 1 })], forger));
    publish('forged', message([envelope('put', 'forged', { k: 'forged', v: 2 })])); // not signed at all
    publish('garbage', message('[{"v":2,"sql":"DROP TABLE ledger"}]', signer)); // signed, but not an envelope
    // One looping envelope (b1 already visited) spoils its whole bundle, the good one with it.
    publish('forged', message([envelope('put', 'forged', { k: 'forged', v: 3 }), { ...envelope('put', 'forged', { k: 'forged', v: 4 }), visited: ['a1', 'b1'] }], signer));
    publish('unknown', message([envelope('dropEverything', 'unknown', { k: 'unknown' })], signer));
    await channel.waitForConfirms();
    try {
      const b1 = databases.get('b1')!;
      expect(await waitUntil(async () => (await channel.checkQueue(names.deadLetterQueue)).messageCount >= deadBefore + 4, 20_000)).toBe(true);
      expect(await waitUntil(async () => (await count(b1, "SELECT COUNT(*) AS n FROM relay_parked WHERE statement = 'dropEverything'")) === 1, 20_000)).toBe(true);
      const [parked] = await sql<{ reason: string }>(b1, "SELECT reason FROM relay_parked WHERE statement = 'dropEverything'");
      expect(parked!.reason).toMatch(/not in the registry/);
      expect((await ledger(b1)).get('forged')).toBeUndefined();
      expect(await count(b1, "SELECT COUNT(*) AS n FROM relay_inbox WHERE k = 'forged'")).toBe(0);
      const dead = await channel.get(names.deadLetterQueue, { noAck: true });
      expect(dead).not.toBe(false);
      expect((await harness.relays.get('b1')!.status()).deadLettered).toBe(4);
    } finally {
      await channel.purgeQueue(names.deadLetterQueue);
      await connection.close();
    }
  });

  it('can be inspected from outside the relays: depths and outbox lag from the databases and the broker', async () => {
    const view = await inspectRelay({ topology, amqpUrl: AMQP_URL });
    expect(view.brokerError).toBeNull();
    expect(view.deadLetterDepth).toBe(0);
    expect(view.unroutableDepth).toBe(0);
    expect(view.nodes.map((n) => n.node)).toEqual(['a1', 'b1', 'b2', 'c1']);
    for (const node of view.nodes) expect(node, node.node).toMatchObject({ outboxDepth: 0, outboxLagMs: 0, heldDepth: 0, queueDepth: 0, error: null });
    expect(view.nodes.find((n) => n.node === 'b1')!.parkedDepth).toBe(2); // the duplicate key and the unknown statement
    const unreachable = await inspectRelay({ topology, amqpUrl: 'amqp://guest:guest@127.0.0.1:1' });
    expect(unreachable.brokerError).toMatch(/cannot connect/);
    expect(unreachable.nodes[0]!.queueDepth).toBeNull();
  });
});

describe('relay on a cyclic topology (a peer ring, and levels whose next points back)', () => {
  let harness: RelayHarness;

  afterAll(async () => {
    await harness?.close();
  });

  it('delivers every change to every other node exactly once, without loops', async () => {
    // Two MariaDB databases on one server: each has its own elected publisher.
    const [x1, x2, x3, y1] = await Promise.all([database('x1', 'postgres'), database('x2', 'mysql'), database('x3', 'postgres'), database('y1', 'mysql')]);
    const topology = defineTopology({
      name: `c${run}`,
      partitions: 2,
      levels: [
        { name: 'X', next: ['Y'], nodes: [{ id: 'x1', database: x1!.url, peers: ['x2'] }, { id: 'x2', database: x2!.url, peers: ['x3'] }, { id: 'x3', database: x3!.url, peers: ['x1'] }] },
        { name: 'Y', next: ['X'], nodes: [{ id: 'y1', database: y1!.url }] },
      ],
      statements: STATEMENTS,
    });
    topologies.push(topology);
    harness = new RelayHarness(topology, log);
    const nodes = ['x1', 'x2', 'x3', 'y1'];
    await harness.start(nodes);
    await Promise.all(nodes.map((node) => harness.emit(node, 3, 20)));
    const expected = new Map(nodes.map((node) => [node, expectedLedger(nodes, 3, 20)]));
    await converged(databases, expected, log);
    for (const node of nodes) {
      const db = databases.get(node)!;
      // Each node received the 3 × 20 changes of each of the 3 others once: no copy came back around a cycle.
      expect(await count(db, 'SELECT COUNT(*) AS n FROM relay_inbox'), `inbox of ${node}`).toBe(3 * 3 * 20);
      expect(await count(db, 'SELECT COUNT(*) AS n FROM relay_inbox WHERE origin = $1', [node])).toBe(0);
    }
  });
});

describe('relay with SQLite nodes (SQLite → PostgreSQL → SQLite)', () => {
  let harness: RelayHarness;

  afterAll(async () => {
    await harness?.close();
  });

  it('propagates in order through SQLite origins and targets, with a standby relay on the SQLite origin', async () => {
    const [s1, t1, u1] = await Promise.all([database('s1', 'sqlite'), database('t1', 'postgres'), database('u1', 'sqlite')]);
    const topology = defineTopology({
      name: `s${run}`,
      partitions: 2,
      levels: [
        { name: 'S', nodes: [{ id: 's1', database: s1!.url }] },
        { name: 'T', nodes: [{ id: 't1', database: t1!.url }] },
        { name: 'U', nodes: [{ id: 'u1', database: u1!.url }] },
      ],
      statements: STATEMENTS,
    });
    topologies.push(topology);
    harness = new RelayHarness(topology, log);
    await harness.start(['s1', 't1', 'u1']);
    // A second relay of s1 in this process: the lease lets only one of them publish s1's outbox.
    const standby = await startRelay({ topology, node: 's1', amqpUrl: AMQP_URL, keys: KEYS, logger: log });
    try {
      await harness.emit('s1', 4, 25);
      const expected = expectedLedger(['s1'], 4, 25);
      await converged(databases, new Map([['s1', expected], ['t1', expected], ['u1', expected]]), log);
      expect(await count(databases.get('u1')!, "SELECT COUNT(*) AS n FROM relay_inbox WHERE status = 'applied'")).toBe(100);
      const publishers = [(await harness.relays.get('s1')!.status()).publisher, (await standby.status()).publisher];
      expect(publishers.filter(Boolean)).toHaveLength(1);
    } finally {
      await standby.close();
    }
  });
});

describe('relay wake-up on PostgreSQL', () => {
  let harness: RelayHarness;

  afterAll(async () => {
    await harness?.close();
  });

  it("publishes an application's change at its commit (NOTIFY), not at the next poll", async () => {
    const [p1, q1] = await Promise.all([database('p1', 'postgres'), database('q1', 'postgres')]);
    const topology = defineTopology({
      name: `n${run}`,
      partitions: 1,
      levels: [
        { name: 'P', nodes: [{ id: 'p1', database: p1!.url }] },
        { name: 'Q', nodes: [{ id: 'q1', database: q1!.url }] },
      ],
      statements: STATEMENTS,
    });
    topologies.push(topology);
    harness = new RelayHarness(topology, log);
    await harness.start(['p1', 'q1'], { pollInterval: '60s' });
    expect(await waitUntil(async () => (await harness.relays.get('p1')!.status()).publisher, 10_000)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the publisher has looked at the empty outbox and sleeps
    const started = Date.now();
    await harness.emit('p1', 1, 3);
    expect(await waitUntil(async () => (await ledger(databases.get('q1')!)).get('p1-0')?.length === 3, 10_000)).toBe(true);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('publishes an outbox row whose transaction committed after a row with a higher id was published', async () => {
    // The publisher reads past a cursor; a row that took a lower id but committed later is behind it.
    const client = await harness.client('p1');
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let written: (id: bigint) => void = () => undefined;
    const lateId = new Promise<bigint>((resolve) => (written = resolve));
    // db.transaction (not client.transaction): the emit writes its outbox row at once, taking its id now.
    const slow = client.db.transaction(async (tx) => {
      await client.emit(tx, 'put', { k: 'late', v: 1 }, { key: 'late', routingKey: 'eu.orders' });
      written(BigInt(String((await tx.query("SELECT currval(pg_get_serial_sequence('relay_outbox', 'id')) AS id")).rows[0]!.id)));
      await gate;
    });
    const late = await lateId;
    await harness.emit('p1', 2, 2); // higher ids, committed and published while the first transaction waits
    expect(await waitUntil(async () => (await ledger(databases.get('q1')!)).get('p1-1')?.length === 2, 10_000)).toBe(true);
    const [taken] = await sql<{ id: string }>(databases.get('p1')!, "SELECT last_value AS id FROM relay_outbox_id_seq");
    expect(BigInt(taken!.id)).toBeGreaterThan(late);
    release();
    await slow;
    expect(await waitUntil(async () => (await ledger(databases.get('q1')!)).get('late')?.length === 1, 10_000)).toBe(true);
    // The row is deleted once its confirm is in, which may come after q1 applied the change.
    expect(await waitUntil(async () => (await count(databases.get('p1')!, 'SELECT COUNT(*) AS n FROM relay_outbox')) === 0, 5000)).toBe(true);
  });

});

describe('a monitor watching a relay (baton serve --relay)', () => {
  let harness: RelayHarness;
  let monitor: Monitor | undefined;

  afterAll(async () => {
    await monitor?.close();
    await harness?.close();
  });

  it('shows an outbox backlog with its age, alerts on it, and clears both once the relay publishes', async () => {
    const [m1, m2] = await Promise.all([database('m1', 'postgres'), database('m2', 'postgres')]);
    const topology = defineTopology({
      name: `m${run}`,
      partitions: 2,
      levels: [
        { name: 'M', nodes: [{ id: 'm1', database: m1!.url }] },
        { name: 'N', nodes: [{ id: 'm2', database: m2!.url }] },
      ],
      statements: STATEMENTS,
    });
    topologies.push(topology);
    harness = new RelayHarness(topology, log);
    await harness.start(['m2']); // declares the broker objects; m1 has no relay yet, so its changes wait
    await harness.emit('m1', 3, 10);
    monitor = await startMonitor({
      store: `memory:relay-monitor-${run}`,
      listen: false,
      relays: [await relayStatusProvider({ topology, amqpUrl: AMQP_URL })],
      relayPollEvery: '1s',
      alerts: { relayBacklog: '2s' },
      logger: log,
    });
    const m1View = () => monitor!.status()?.relays[0]?.nodes.find((n) => n.node === 'm1');
    const backlogAlert = () => monitor!.status()?.alerts.find((a) => a.id === `relay-backlog:${topology.name}/m1`);
    expect(m1View()).toMatchObject({ outboxDepth: 30, error: null });
    expect(await waitUntil(async () => (await monitor!.refresh(), backlogAlert() !== undefined), 15_000)).toBe(true);
    expect(m1View()!.outboxLagMs).toBeGreaterThan(2000);
    const { body } = await monitor.metrics();
    expect(body).toMatch(new RegExp(`baton_relay_outbox_depth\\{relay="${topology.name}",node="m1"[^}]*\\} 30`));

    await harness.start(['m1']);
    await converged(databases, new Map([['m2', expectedLedger(['m1'], 3, 10)]]), log);
    expect(await waitUntil(async () => (await monitor!.refresh(), m1View()?.outboxDepth === 0 && backlogAlert() === undefined), 15_000)).toBe(true);
    expect(monitor.status()?.relays[0]).toMatchObject({ deadLetterDepth: 0, brokerError: null });
  });
});
