/**
 * The applier's decisions (inbox.ts) against an in-memory database that understands the relay's
 * bookkeeping statements by name: whatever order and batching changes arrive in, with duplicates, each is
 * applied once and in sequence order per key; a failing statement is parked and a tombstone forwarded.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { encodeEnvelope, newChangeId, parseEnvelope, parseMessage, type Envelope } from '../../src/relay/envelope.js';
import { RelayDatabaseError } from '../../src/relay/errors.js';
import { Applier, type Incoming } from '../../src/relay/inbox.js';
import { defineTopology } from '../../src/relay/topology.js';
import type { PublisherLock, QueryResult, RelayDatabase, RelaySql, RelayTx } from '../../src/relay/dialects/dialect.js';

const topology = defineTopology({
  name: 't',
  levels: [
    { name: 'A', nodes: [{ id: 'a1', database: 'postgres://x/a' }] },
    { name: 'B', nodes: [{ id: 'b1', database: 'postgres://x/b' }] },
    { name: 'C', nodes: [{ id: 'c1', database: 'postgres://x/c' }] },
  ],
  statements: {
    put: { params: { k: 'string', v: 'integer' }, postgres: 'PUT' },
    fail: { params: { k: 'string' }, postgres: 'FAIL' },
  },
});

interface State {
  inbox: Map<string, { k: string; seq: number; status: string }>;
  versions: Map<string, number>;
  held: Map<string, { origin: string; k: string; seq: number; body: string }>;
  parked: { id: string; seq: number; reason: string }[];
  outbox: { target: string; body: string }[];
  ledger: { k: string; v: number }[];
}

/** A database that runs the relay's statements (by builder name) on maps, with transactions and savepoints. */
class MemoryDatabase implements RelayDatabase {
  readonly kind = 'postgres' as const;
  readonly label = 'memory';
  state: State = { inbox: new Map(), versions: new Map(), held: new Map(), parked: [], outbox: [], ledger: [] };
  readonly sql: RelaySql = {
    ddl: [],
    outboxHasChanges: 'outboxHasChanges',
    insertOutbox: (rows) => ({ sql: `insertOutbox:${rows.length}`, values: rows.flat() }),
    readOutbox: 'readOutbox',
    readOutboxAfter: 'readOutboxAfter',
    deleteOutbox: (rows) => ({ sql: `deleteOutbox:${rows.length}`, values: rows.flat() }),
    selectInbox: (rows) => ({ sql: `selectInbox:${rows.length}`, values: rows.flat() }),
    insertInbox: (rows) => ({ sql: `insertInbox:${rows.length}`, values: rows.flat() }),
    updateInboxStatus: 'updateInboxStatus',
    selectVersions: (rows) => ({ sql: `selectVersions:${rows.length}`, values: rows.flat() }),
    upsertVersions: (rows) => ({ sql: `upsertVersions:${rows.length}`, values: rows.flat() }),
    selectHeld: (rows) => ({ sql: `selectHeld:${rows.length}`, values: rows.flat() }),
    insertHeld: 'insertHeld',
    deleteHeld: 'deleteHeld',
    insertParked: 'insertParked',
    depths: 'depths',
    purgeInbox: 'purgeInbox',
  };

  async transaction<T>(fn: (tx: RelayTx) => Promise<T>): Promise<T> {
    const before = clone(this.state);
    const savepoints: State[] = [];
    try {
      return await fn({ query: async (sql, values = []) => this.#run(sql, values as unknown[], savepoints) });
    } catch (error) {
      this.state = before;
      throw error;
    }
  }

  async query(sql: string, values: readonly unknown[] = []): Promise<QueryResult> {
    return this.#run(sql, values as unknown[], []);
  }

  #run(sql: string, v: unknown[], savepoints: State[]): QueryResult {
    const s = this.state;
    const [op] = sql.split(':');
    const none = { rows: [], affected: 0 };
    const tuples = (width: number) => Array.from({ length: v.length / width }, (_, i) => v.slice(i * width, i * width + width));
    switch (op) {
      case 'PUT':
        s.ledger.push({ k: v[0] as string, v: v[1] as number });
        return { rows: [], affected: 1 };
      case 'FAIL':
        throw Object.assign(new Error('duplicate key value'), { code: '23505' });
      case 'SAVEPOINT relay_change':
        savepoints.push(clone(s));
        return none;
      case 'RELEASE SAVEPOINT relay_change':
        savepoints.pop();
        return none;
      case 'ROLLBACK TO SAVEPOINT relay_change':
        this.state = savepoints.pop() as State;
        return none;
      case 'selectInbox':
        return { rows: v.filter((id) => s.inbox.has(id as string)).map((id) => ({ id })), affected: 0 };
      case 'insertInbox':
        for (const [id, , k, seq, status] of tuples(6)) {
          if (s.inbox.has(id as string)) throw Object.assign(new Error('duplicate inbox id'), { code: '23505' });
          s.inbox.set(id as string, { k: k as string, seq: seq as number, status: status as string });
        }
        return none;
      case 'updateInboxStatus': {
        const row = s.inbox.get(v[1] as string);
        if (row) row.status = v[0] as string;
        return none;
      }
      case 'selectVersions':
        return { rows: tuples(2).flatMap(([origin, k]) => (s.versions.has(`${origin}|${k}`) ? [{ origin, k, seq: s.versions.get(`${origin}|${k}`) }] : [])), affected: 0 };
      case 'upsertVersions':
        for (const [origin, k, seq] of tuples(3)) s.versions.set(`${origin}|${k}`, seq as number);
        return none;
      case 'selectHeld': {
        const pairs = new Set(tuples(2).map(([origin, k]) => `${origin}|${k}`));
        return { rows: [...s.held.values()].filter((h) => pairs.has(`${h.origin}|${h.k}`)).sort((a, b) => a.seq - b.seq), affected: 0 };
      }
      case 'insertHeld':
        s.held.set(`${v[0]}|${v[1]}|${v[2]}`, { origin: v[0] as string, k: v[1] as string, seq: v[2] as number, body: v[3] as string });
        return none;
      case 'deleteHeld':
        s.held.delete(`${v[0]}|${v[1]}|${v[2]}`);
        return none;
      case 'insertParked':
        s.parked.push({ id: v[0] as string, seq: v[3] as number, reason: v[5] as string });
        return none;
      case 'insertOutbox':
        // One row per bundle; kept here as one entry per envelope, in order.
        for (const [target, , body] of tuples(5)) for (const e of parseMessage(body as string)) s.outbox.push({ target: target as string, body: encodeEnvelope(e) });
        return none;
      default:
        throw new Error(`memory database: unknown statement ${sql}`);
    }
  }

  async ensureSchema(): Promise<void> {}
  async tryPublisherLock(): Promise<PublisherLock | undefined> {
    return undefined;
  }
  async takeSeqs(): Promise<Map<string, number>> {
    throw new Error('not used here');
  }
  wrap(error: unknown, what: string): RelayDatabaseError {
    if (error instanceof RelayDatabaseError) return error;
    const code = (error as { code?: string }).code;
    return new RelayDatabaseError(`${what}: ${(error as Error).message}`, code !== '23505', { cause: error });
  }
  isUniqueViolation(): boolean {
    return false;
  }
  async close(): Promise<void> {}
}

function clone(state: State): State {
  return {
    inbox: new Map([...state.inbox].map(([k, v]) => [k, { ...v }])),
    versions: new Map(state.versions),
    held: new Map(state.held),
    parked: [...state.parked],
    outbox: [...state.outbox],
    ledger: [...state.ledger],
  };
}

/** Changes 1..n of key `k` made at a1, as b1 receives them (route: b1 → c1). */
function changes(n: number, k = 'k', failing: ReadonlySet<number> = new Set()): Incoming[] {
  const clock = new FakeClock(1_700_000_000_000);
  return Array.from({ length: n }, (_, i) => {
    const seq = i + 1;
    const envelope: Envelope = {
      v: 2,
      id: newChangeId(clock),
      origin: 'a1',
      app: 't',
      key: k,
      seq,
      rk: 'default',
      route: { c1: {} },
      visited: ['a1'],
      statement: failing.has(seq) ? 'fail' : 'put',
      args: failing.has(seq) ? { k } : { k, v: seq },
      createdAt: 1_700_000_000_000 + seq,
    };
    return { envelope: parseEnvelope(encodeEnvelope(envelope)) };
  });
}

function applier(db: MemoryDatabase): Applier {
  return new Applier({ topology, node: 'b1', db, clock: new FakeClock(1_700_000_100_000), logger: silentLogger });
}

describe('relay applier', () => {
  it('applies each change once and in sequence order, whatever the arrival order, batching and duplicates', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }).chain((n) =>
          fc.tuple(
            fc.constant(n),
            // Deliveries: every change at least once, some twice, in any order.
            fc.shuffledSubarray([...Array.from({ length: n }, (_, i) => i), ...Array.from({ length: n }, (_, i) => i)], { minLength: n }).filter((d) => new Set(d).size === n),
            fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 16, maxLength: 16 }),
          ),
        ),
        async ([n, deliveries, sizes]) => {
          const db = new MemoryDatabase();
          const apply = applier(db);
          const all = changes(n);
          let at = 0;
          for (let b = 0; at < deliveries.length; b++) {
            const size = sizes[b % sizes.length] as number;
            await apply.apply(deliveries.slice(at, at + size).map((i) => all[i] as Incoming));
            at += size;
          }
          expect(db.state.ledger.map((row) => row.v)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
          expect([...db.state.inbox.values()].every((row) => row.status === 'applied')).toBe(true);
          expect(db.state.inbox.size).toBe(n);
          expect(db.state.held.size).toBe(0);
          expect(db.state.versions.get('a1|k')).toBe(n);
          // Forwarded to c1 once each, in sequence order.
          const forwarded = db.state.outbox.map((row) => parseEnvelope(row.body) as Envelope);
          expect(forwarded.map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
          expect(forwarded.every((e) => e.visited.join() === 'a1,b1' && Object.keys(e.route).length === 0)).toBe(true);
        },
      ),
      { numRuns: 150, seed: 20261123 },
    );
  });

  it('parks a failing change, applies the rest of the batch, and forwards a tombstone in its place', async () => {
    const db = new MemoryDatabase();
    const result = await applier(db).apply(changes(4, 'k', new Set([2])));
    expect(db.state.ledger.map((row) => row.v)).toEqual([1, 3, 4]);
    expect(db.state.parked).toHaveLength(1);
    expect(db.state.parked[0]).toMatchObject({ seq: 2 });
    expect(db.state.parked[0]!.reason).toMatch(/duplicate key value/);
    expect([...db.state.inbox.values()].map((row) => row.status)).toEqual(['applied', 'parked', 'applied', 'applied']);
    const forwarded = db.state.outbox.map((row) => parseEnvelope(row.body));
    expect(forwarded.map((e) => [e.seq, e.skip === undefined])).toEqual([
      [1, true],
      [2, false],
      [3, true],
      [4, true],
    ]);
    expect(forwarded[1]!.skip).toMatch(/^parked at b1: /);
    expect(result.applied.map((a) => a.createdAt - 1_700_000_000_000)).toEqual([1, 3, 4]);
  });

  it('treats a tombstone as the change it replaces: recorded, forwarded, nothing applied', async () => {
    const db = new MemoryDatabase();
    const [one, two] = changes(2);
    const tombstone: Envelope = { ...one!.envelope, skip: 'parked at a0: test' };
    await applier(db).apply([two!, { envelope: parseEnvelope(encodeEnvelope(tombstone)) }]);
    expect(db.state.ledger.map((row) => row.v)).toEqual([2]);
    expect(db.state.inbox.get(one!.envelope.id)?.status).toBe('skipped');
    expect(db.state.outbox.map((row) => parseEnvelope(row.body).skip !== undefined)).toEqual([true, false]);
  });

  it('rolls a batch back whole on a transient failure, so that a retry applies it once', async () => {
    const db = new MemoryDatabase();
    const all = changes(3);
    const original = db.transaction.bind(db);
    let failNext = true;
    db.transaction = async (fn) =>
      original(async (tx) => {
        const result = await fn(tx);
        if (failNext) {
          failNext = false;
          throw new RelayDatabaseError('connection lost at commit', true);
        }
        return result;
      });
    await expect(applier(db).apply(all)).rejects.toMatchObject({ transient: true });
    expect(db.state.ledger).toEqual([]);
    await applier(db).apply(all);
    expect(db.state.ledger.map((row) => row.v)).toEqual([1, 2, 3]);
  });
});
