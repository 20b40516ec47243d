/**
 * The HTTP sync on SQLite with the real fixture API (node:http on 127.0.0.1): options, convergence
 * through every fault, rejects, a monotonic cursor, fencing of a paused ex-owner, and stopping on
 * `ctx.signal`. Real HTTP and a real database, no mocks; timeouts and backoffs are kept small.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ConfigError, NotOwnerError } from '../../src/core/errors.js';
import { randomId } from '../../src/core/ids.js';
import { httpSync, parseRetryAfter, SyncSourceError, type HttpSync, type HttpSyncOptions, type SyncPageEvent } from '../../src/sync/index.js';
import { compareCursors, diffOrders, FixtureApi, OrderSchema, ORDER_COLUMNS, TargetProbe, type Fault } from '../helpers/http-sync-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-http-sync-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const item of open.splice(0).reverse()) await item.close();
});

interface Setup {
  api: FixtureApi;
  probe: TargetProbe;
  db: string;
  table: string;
  make(overrides?: Partial<Omit<HttpSyncOptions<unknown>, 'source'>> & { source?: Partial<HttpSyncOptions['source']> }): HttpSync;
}

async function setup(fixture: Parameters<typeof FixtureApi.start>[0] = {}): Promise<Setup> {
  const api = await FixtureApi.start(fixture);
  open.push(api);
  const db = `sqlite:${join(dir, `target-${randomId(4)}.db`)}`;
  const probe = await TargetProbe.open(db);
  open.push(probe);
  const table = 'orders';
  await probe.createOrders(table);
  const make: Setup['make'] = (overrides = {}) => {
    const { source, ...rest } = overrides;
    const sync = httpSync({
      name: 'orders',
      source: {
        url: `${api.url}/orders`,
        cursor: { kind: 'updatedSince' },
        pageSize: 20,
        timeout: '300ms',
        attempts: 8,
        backoff: { initial: '5ms', max: '40ms' },
        maxRetryAfter: '50ms',
        ...source,
      },
      schema: OrderSchema,
      target: { db, table, key: 'id', columns: [...ORDER_COLUMNS], version: 'updated_at' },
      ...rest,
    } as HttpSyncOptions<unknown>);
    open.push(sync);
    return sync;
  };
  return { api, probe, db, table, make };
}

const ctx = (token: bigint, signal: AbortSignal = new AbortController().signal, node = 'n1') => ({ token, signal, node: { id: node } });

describe('httpSync options', () => {
  const valid = {
    source: { url: 'http://127.0.0.1:1/orders', cursor: { kind: 'updatedSince' } },
    schema: OrderSchema,
    target: { db: 'sqlite:/tmp/x.db', table: 'orders', key: 'id', columns: ['id', 'updated_at'] },
  } as const;
  const bad = (patch: (o: Record<string, any>) => void): unknown => {
    const o = JSON.parse(JSON.stringify(valid));
    o.schema = OrderSchema;
    patch(o);
    return () => httpSync(o);
  };

  it('accepts a complete configuration and refuses each bad field by name', () => {
    expect(() => httpSync(valid as never)).not.toThrow();
    const cases: [(o: Record<string, any>) => void, RegExp][] = [
      [(o) => (o.source.url = 'ftp://x/orders'), /source\.url must use http: or https:/],
      [(o) => (o.source.url = 'not a url'), /source\.url must be an absolute/],
      [(o) => (o.source.pageSize = 0), /source\.pageSize must be an integer from 1 to 10000, got 0/],
      [(o) => (o.source.maxPagesPerRun = 1.5), /source\.maxPagesPerRun/],
      [(o) => (o.source.timeout = 'soon'), /source\.timeout/],
      [(o) => (o.source.backoff = { initial: '5s', max: '1s' }), /backoff\.initial \(5000 ms\) must not exceed source\.backoff\.max \(1000 ms\)/],
      [(o) => (o.source.cursor = { kind: 'since' }), /source\.cursor\.kind must be/],
      [(o) => (o.source.cursor = { kind: 'pageToken', field: 'x' }), /unknown option "field" for kind "pageToken"/],
      [(o) => (o.source.pageSze = 10), /unknown option source\.pageSze/],
      [(o) => (o.target.table = 'orders; DROP TABLE x'), /target\.table must be a table name/],
      [(o) => (o.target.columns = ['id', 'bad-name']), /target\.columns\[1\] must be a column name/],
      [(o) => (o.target.key = 'customer'), /target\.key must be among target\.columns/],
      [(o) => (o.target.version = 'id'), /target\.version must not be a key column/],
      [(o) => (o.target.cursorTable = 'orders'), /three different tables/],
      [(o) => (o.target.db = 'oracle://x'), /target\.db must be a postgres:\/\/, postgresql:\/\/, mysql:\/\/, mariadb:\/\/ or sqlite: URL/],
      [(o) => (o.target.db = 'postgres://app@db/shop?sslmdoe=require'), /target\.db "postgres:\/\/app@db\/shop\?sslmdoe=require": unknown option "sslmdoe"/],
      [(o) => (o.target.db = 'sqlite::memory:'), /in-memory SQLite/],
      [(o) => (o.schema = { parse() {} }), /schema must be a zod schema/],
      [(o) => (o.name = 'has space'), /name must be/],
    ];
    for (const [patch, message] of cases) {
      const build = bad(patch) as () => void;
      expect(build, String(message)).toThrow(ConfigError);
      expect(build, String(message)).toThrow(message);
    }
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('2', 0)).toBe(2000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(parseRetryAfter(new Date(1000).toUTCString(), 4000)).toBe(0);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
    expect(parseRetryAfter(null, 0)).toBeUndefined();
  });
});

describe('httpSync on SQLite against the fixture API', () => {
  it('converges through every fault while the data changes: target = source, rejects exact, cursor monotonic', async () => {
    const faults: Partial<Record<Fault, number>> = { error500: 0.06, tooMany: 0.04, hang: 0.03, malformed: 0.05, duplicate: 0.06, stale: 0.06, shuffle: 0.1 };
    const s = await setup({ seed: 7, initial: 150, invalidEvery: 13, faults });
    const cursors: unknown[] = [];
    const sync = s.make({ onPage: (e: SyncPageEvent) => cursors.push(e.cursor), source: { maxPagesPerRun: 10 } });
    // Each fault once for certain, then at random, while records are inserted and updated.
    s.api.schedule('hang', 'duplicate', 'malformed', 'stale', 'error500', 'tooMany', 'shuffle');
    s.api.startChanging({ everyMs: 40, inserts: 3, updates: 3 });
    const until = Date.now() + 2000;
    while (Date.now() < until) await sync.run(ctx(1n));
    s.api.stopChanging();
    let last;
    for (let i = 0; i < 40; i++) {
      last = await sync.run(ctx(1n));
      if (last.stopped === 'caught-up' && last.fetched === 0) break;
    }
    s.api.setFaults({});
    await sync.run(ctx(1n)); // one clean run after the faults: the end state is what it is without them

    const diff = diffOrders(await s.probe.orders(s.table), s.api.validRecords());
    expect(diff).toEqual({ missing: [], extra: [], different: [] });
    expect(await s.probe.duplicateKeys(s.table)).toBe(0);

    const rejects = await s.probe.rejects('baton_sync_rejects', 'orders');
    const invalid = s.api.invalidRecords();
    expect(invalid.length).toBeGreaterThan(10);
    expect(rejects.map((r) => Number(r.recordKey)).sort((a, b) => a - b)).toEqual(invalid.map((r) => r.id).sort((a, b) => a - b));
    for (const r of rejects) {
      expect(r.reason).toMatch(/^schema: (amount_cents|status|customer): /);
      expect(r.raw).toEqual(invalid.find((i) => i.id === Number(r.recordKey)));
    }

    for (let i = 1; i < cursors.length; i++) {
      expect(compareCursors(cursors[i] as never, cursors[i - 1] as never), `cursor ${i}`).toBeGreaterThanOrEqual(0);
    }
    const served = s.api.served;
    for (const fault of Object.keys(faults) as Fault[]) expect(served[fault], fault).toBeGreaterThan(0);
    expect(sync.stats.retries).toBeGreaterThan(5);
    expect(sync.stats.rejected).toBeGreaterThanOrEqual(invalid.length);
    expect((await s.probe.cursor('baton_sync_cursor', 'orders'))?.token).toBe(1n);
  }, 60_000);

  it('negative control: without a version column, replayed pages roll rows back (the faults bite)', async () => {
    const s = await setup({ seed: 2, initial: 150, faults: { duplicate: 0.1, stale: 0.1, shuffle: 0.1 } });
    const sync = s.make({ target: { db: s.db, table: s.table, key: 'id', columns: [...ORDER_COLUMNS] } });
    s.api.startChanging({ everyMs: 40, inserts: 3, updates: 3 });
    const until = Date.now() + 1500;
    while (Date.now() < until) await sync.run(ctx(1n));
    s.api.stopChanging();
    s.api.setFaults({});
    await sync.run(ctx(1n));
    const diff = diffOrders(await s.probe.orders(s.table), s.api.validRecords());
    // Nothing is lost (the cursor is right), but stale copies replaced newer rows.
    expect(diff.missing).toEqual([]);
    expect(diff.different.length).toBeGreaterThan(0);
  });

  it('never lets a paused ex-owner commit once a newer owner has claimed the cursor', async () => {
    const s = await setup({ seed: 3, initial: 5 });
    const old = s.make();
    const fresh = s.make();
    // The old owner (token 5) is mid-page: its request is held by the API.
    const heldPromise = s.api.holdNext();
    const oldRun = old.run(ctx(5n, undefined, 'old'));
    const held = await heldPromise;
    // Meanwhile the new owner (token 6) runs to the end, and the source gets 3 more records.
    const freshRun = await fresh.run(ctx(6n, undefined, 'new'));
    expect(freshRun.upserted).toBe(5);
    const cursorBefore = await s.probe.cursor('baton_sync_cursor', 'orders');
    s.api.insert(3);
    // The old owner wakes up with a page of 8 records: refused, nothing of it lands.
    held.release();
    await expect(oldRun).rejects.toThrow(NotOwnerError);
    await expect(oldRun).rejects.toThrow(/fenced by token 6 \(node new\); this run's token 5 is older/);
    expect((await s.probe.orders(s.table)).length).toBe(5);
    expect(await s.probe.cursor('baton_sync_cursor', 'orders')).toEqual(cursorBefore);
    // And it cannot even start another run.
    await expect(old.run(ctx(5n, undefined, 'old'))).rejects.toThrow(NotOwnerError);
    expect(old.stats.failedRuns).toBe(2);
    // The new owner picks up the 3 records.
    expect((await fresh.run(ctx(6n, undefined, 'new'))).upserted).toBe(3);
    expect(diffOrders(await s.probe.orders(s.table), s.api.validRecords())).toEqual({ missing: [], extra: [], different: [] });
  });

  it('stops between pages when ctx.signal aborts; committed pages stay and the next run resumes', async () => {
    const s = await setup({ seed: 4, initial: 100 });
    const controller = new AbortController();
    const sync = s.make({
      source: { pageSize: 10 },
      onPage: (e: SyncPageEvent) => {
        if (e.page === 2) controller.abort(new Error('shutting down'));
      },
    });
    const first = await sync.run(ctx(1n, controller.signal));
    expect(first).toMatchObject({ stopped: 'aborted', pages: 2, upserted: 20 });
    expect((await s.probe.orders(s.table)).map((r) => r.id)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(await s.probe.cursor('baton_sync_cursor', 'orders')).toMatchObject({ cursor: { id: 20 } });
    const second = await sync.run(ctx(1n));
    expect(second).toMatchObject({ stopped: 'caught-up', upserted: 80 });
    expect((await s.probe.orders(s.table)).length).toBe(100);
  });

  it('aborts a request in flight at once when ctx.signal aborts', async () => {
    const s = await setup({ seed: 5, initial: 10 });
    const sync = s.make({ source: { timeout: '20s' } });
    s.api.schedule('hang');
    const controller = new AbortController();
    const started = Date.now();
    const run = sync.run(ctx(1n, controller.signal));
    setTimeout(() => controller.abort(new Error('lease lost')), 150);
    expect(await run).toMatchObject({ stopped: 'aborted', pages: 0 });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await s.probe.orders(s.table)).toEqual([]);
  });

  it('fails the run without moving the cursor when a page stays malformed; earlier pages stay', async () => {
    const s = await setup({ seed: 6, initial: 30 });
    const sync = s.make({ source: { pageSize: 10, attempts: 3 } });
    // Page 1 is fine, page 2 is malformed three times in a row.
    s.api.schedule('shuffle', 'malformed', 'malformed', 'malformed');
    const error = await sync.run(ctx(1n)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SyncSourceError);
    expect((error as SyncSourceError).message).toMatch(/malformed JSON .* after 3 attempts/);
    expect((await s.probe.orders(s.table)).length).toBe(10);
    expect(await s.probe.cursor('baton_sync_cursor', 'orders')).toMatchObject({ cursor: { id: 10 } });
    expect((await sync.run(ctx(1n))).upserted).toBe(20);
  });

  it('does not retry a 404, and honours Retry-After on 429', async () => {
    const s = await setup({ seed: 8, initial: 3, retryAfterSeconds: 1 });
    const missing = s.make({ source: { url: `${s.api.url}/nope` } });
    await expect(missing.run(ctx(1n))).rejects.toMatchObject({ code: 'SYNC_SOURCE_FAILED', status: 404, attempts: 1 });

    const sync = s.make({ source: { maxRetryAfter: '5s' } });
    s.api.schedule('tooMany');
    const started = Date.now();
    const summary = await sync.run(ctx(1n));
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(summary).toMatchObject({ retries: 1, upserted: 3, requests: 2 });
  });

  it('spaces requests by minInterval and bounds a run by maxPagesPerRun', async () => {
    const s = await setup({ seed: 9, initial: 60 });
    const sync = s.make({ source: { pageSize: 10, minInterval: '100ms', maxPagesPerRun: 4 } });
    const started = Date.now();
    const summary = await sync.run(ctx(1n));
    expect(summary).toMatchObject({ stopped: 'max-pages', pages: 4, upserted: 40 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it('keeps every record sharing one timestamp when pages end between them', async () => {
    // 97 records in one batch: one updated_at for all; pages of 7 end between equal timestamps.
    const s = await setup({ seed: 10, initial: 97 });
    const sync = s.make({ source: { pageSize: 7 } });
    expect(new Set(s.api.records().map((r) => r.updated_at)).size).toBe(1);
    const summary = await sync.run(ctx(1n));
    expect(summary).toMatchObject({ stopped: 'caught-up', upserted: 97 });
    expect((await s.probe.orders(s.table)).length).toBe(97);
  });

  it('syncs with an increasingId cursor and with a pageToken cursor', async () => {
    const s = await setup({ seed: 11, initial: 45, invalidEvery: 9 });
    const byId = s.make({ name: 'by-id', source: { url: `${s.api.url}/orders/by-id`, cursor: { kind: 'increasingId' }, pageSize: 10 } });
    expect(await byId.run(ctx(1n))).toMatchObject({ stopped: 'caught-up', upserted: 40, rejected: 5, cursor: { id: 45 } });
    s.api.insert(5);
    expect(await byId.run(ctx(1n))).toMatchObject({ upserted: 5, cursor: { id: 50 } });

    await s.probe.query(`DELETE FROM ${s.probe.quote(s.table)}`);
    const paged = s.make({ name: 'paged', source: { url: `${s.api.url}/orders/pages`, cursor: { kind: 'pageToken' }, pageSize: 10 } });
    expect(await paged.run(ctx(1n))).toMatchObject({ stopped: 'caught-up' });
    expect(diffOrders(await s.probe.orders(s.table), s.api.validRecords())).toEqual({ missing: [], extra: [], different: [] });
    expect((await s.probe.rejects('baton_sync_rejects', 'paged')).length).toBe(5);
  });

  it('ensureSchema() names a missing table, a missing column and a key without a unique index', async () => {
    const s = await setup({ seed: 15, initial: 1 });
    await s.probe.query('CREATE TABLE loose (id INTEGER, customer TEXT, amount_cents INTEGER, status TEXT, updated_at TEXT)');
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ table: 'nowhere' }, /target table nowhere must exist .*no such table: nowhere/],
      [{ columns: [...ORDER_COLUMNS, 'region'] }, /no such column: "region"/],
      [{ table: 'loose' }, /primary key or unique index on exactly \(id\).*ON CONFLICT clause does not match/],
    ];
    for (const [patch, message] of cases) {
      const sync = s.make({ target: { db: s.db, table: s.table, key: 'id', columns: [...ORDER_COLUMNS], ...patch } as never });
      await expect(sync.ensureSchema()).rejects.toMatchObject({ code: 'SYNC_TARGET_FAILED', message: expect.stringMatching(message) });
    }
    await expect(s.make().ensureSchema()).resolves.toBeDefined();
  });

  it('writes through a database handle it was given, and leaves it open on close()', async () => {
    const s = await setup({ seed: 14, initial: 12 });
    const { default: Database } = await import('better-sqlite3');
    const handle = new Database(s.db.replace(/^sqlite:/, ''));
    const sync = httpSync({
      name: 'handle',
      source: { url: `${s.api.url}/orders`, cursor: { kind: 'updatedSince' } },
      schema: OrderSchema,
      target: { db: { sqlite: handle }, table: s.table, key: 'id', columns: [...ORDER_COLUMNS], version: 'updated_at' },
    });
    expect(await sync.run(ctx(1n))).toMatchObject({ stopped: 'caught-up', upserted: 12 });
    await sync.close();
    await sync.close();
    expect(handle.open).toBe(true);
    expect((handle.prepare('SELECT COUNT(*) AS n FROM orders').get() as { n: number }).n).toBe(12);
    handle.close();
    await expect(sync.run(ctx(1n))).rejects.toThrow(/closed/);
  });

  it('builds requests with a custom request() and headers(), reads pages with a custom parse()', async () => {
    const s = await setup({ seed: 16, initial: 30 });
    let headerCalls = 0;
    const seen: unknown[] = [];
    const sync = s.make({
      source: {
        url: `${s.api.url}/ignored`,
        pageSize: 10,
        headers: async () => ({ 'x-node': `custom-${++headerCalls}` }),
        request: (input) => {
          seen.push(input.cursor);
          const url = new URL(`${s.api.url}/orders`);
          for (const [k, v] of Object.entries(input.params)) url.searchParams.set(k, v);
          return { url, headers: { 'x-trace': 'yes' } };
        },
        parse: (body) => ({ records: (body as { records: unknown[] }).records }),
      },
    });
    expect(await sync.run(ctx(1n))).toMatchObject({ stopped: 'caught-up', upserted: 30, pages: 4 });
    expect(seen[0]).toBeNull();
    expect(seen[1]).toMatchObject({ id: 10 });
    expect(headerCalls).toBe(4);
    expect([...s.api.byNode.keys()]).toEqual(['custom-1', 'custom-2', 'custom-3', 'custom-4']);

    const wrong = s.make({ name: 'wrong', source: { parse: () => ({ rows: [] }) as never } });
    await expect(wrong.run(ctx(1n))).rejects.toMatchObject({ code: 'SYNC_SOURCE_FAILED', attempts: 1, message: expect.stringMatching(/source\.parse must return \{ records/) });
  });

  it('re-reads a lookback window so late-visible records are not lost, without moving the cursor back', async () => {
    const s = await setup({ seed: 12, initial: 20 });
    const sync = s.make({ source: { cursor: { kind: 'updatedSince', lookback: '10s' } } });
    await sync.run(ctx(1n));
    const before = (await s.probe.cursor('baton_sync_cursor', 'orders'))?.cursor;
    const summary = await sync.run(ctx(1n));
    // The whole window is fetched again (idempotent), the cursor stays where it was.
    expect(summary).toMatchObject({ stopped: 'caught-up', fetched: 20, upserted: 20 });
    expect((await s.probe.cursor('baton_sync_cursor', 'orders'))?.cursor).toEqual(before);
  });

  it('rejects rows that map() cannot produce, with the reason, and goes on', async () => {
    const s = await setup({ seed: 13, initial: 10 });
    const sync = s.make({
      target: {
        db: s.db,
        table: s.table,
        key: 'id',
        columns: [...ORDER_COLUMNS],
        map: (r: any) => {
          if (r.id === 4) throw new Error('no region for this customer');
          return r.id === 6 ? { ...r, region: 'eu' } : r;
        },
      },
    });
    expect(await sync.run(ctx(1n))).toMatchObject({ upserted: 8, rejected: 2 });
    const rejects = await s.probe.rejects('baton_sync_rejects', 'orders');
    expect(rejects.map((r) => [r.recordKey, r.reason])).toEqual([
      ['4', 'map threw: no region for this customer'],
      ['6', 'map: column "region" is not in target.columns'],
    ]);
    // Fetched again, stored once: seen counts it.
    await s.probe.query('UPDATE baton_sync_cursor SET cursor_value = NULL');
    await sync.run(ctx(1n));
    expect((await s.probe.rejects('baton_sync_rejects', 'orders')).map((r) => r.seen)).toEqual([2, 2]);
  });
});
