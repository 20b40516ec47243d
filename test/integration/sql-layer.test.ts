/**
 * The SQL layer's pools and transactions (src/sql/) on each real server — PostgreSQL, MariaDB, SQLite:
 * a transaction runs on one connection and is rolled back whole when its function throws (what it threw
 * is rethrown as it is); each kind of failure comes out as a SqlError of the right class (duplicate key,
 * missing table, syntax, lock wait, connection refused); and a driver is loaded only for a URL of its kind.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { randomId } from '../../src/core/ids.js';
import type { SqlDatabase } from '../../src/sql/database.js';
import { SqlError } from '../../src/sql/errors.js';
import { openSqlDatabase } from '../../src/sql/open.js';
import { placeholderList } from '../../src/sql/placeholders.js';
import type { SqlKind } from '../../src/sql/schemes.js';
import { parseSqlUrl } from '../../src/sql/url.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-sql-'));
const URLS: Record<SqlKind, string> = {
  postgres: process.env.BATON_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  mysql: process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test',
  sqlite: `sqlite:${join(dir, 'sql-layer.db')}`,
};
/** A statement that holds the connection's identity, to tell connections apart. */
const CONNECTION_ID: Record<SqlKind, string> = {
  postgres: 'SELECT pg_backend_pid() AS id',
  mysql: 'SELECT CONNECTION_ID() AS id',
  sqlite: 'SELECT 1 AS id',
};

const reader = { label: 'sql layer test', error: ConfigError };
const opened: SqlDatabase[] = [];

async function open(kind: SqlKind, settings: { lockTimeoutMs?: number } = {}): Promise<SqlDatabase> {
  const db = await openSqlDatabase(parseSqlUrl(URLS[kind], reader), { label: `test ${kind}`, poolSize: 3, connectTimeoutMs: 5000, queryTimeoutMs: 10_000, ...settings });
  opened.push(db);
  return db;
}

/** The SqlError `promise` rejects with (failing the test when it resolves or rejects otherwise). */
async function sqlError(promise: Promise<unknown>): Promise<SqlError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SqlError);
  return error as SqlError;
}

afterAll(async () => {
  for (const db of opened.splice(0)) await db.close();
});

describe.each(['postgres', 'mysql', 'sqlite'] as const)('the SQL layer on %s', (kind) => {
  const table = `sql_layer_${randomId(6).toLowerCase()}`;
  const p = (count: number) => placeholderList(kind, count);

  afterAll(async () => {
    const db = await open(kind);
    await db.query(`DROP TABLE IF EXISTS ${table}`);
  });

  it('runs a transaction on one connection and rolls it back whole when its function throws', async () => {
    const db = await open(kind);
    await db.query(`CREATE TABLE ${table} (k VARCHAR(32) PRIMARY KEY, v INTEGER NOT NULL)`);
    await db.query(`INSERT INTO ${table} (k, v) VALUES (${p(2)})`, ['kept', 1]);

    const thrown = new Error('the caller changed its mind');
    const seen: unknown[] = [];
    const outcome = await db
      .transaction(async (tx) => {
        seen.push((await tx.query(CONNECTION_ID[kind])).rows[0]?.id);
        expect((await tx.query(`INSERT INTO ${table} (k, v) VALUES (${p(2)})`, ['gone', 2])).affected).toBe(1);
        expect((await tx.query(`UPDATE ${table} SET v = ${p(1)} WHERE k = 'kept'`, [99])).affected).toBe(1);
        seen.push((await tx.query(CONNECTION_ID[kind])).rows[0]?.id);
        // Its own writes are visible to it …
        expect((await tx.query(`SELECT k FROM ${table} ORDER BY k`)).rows.map((r) => r.k)).toEqual(['gone', 'kept']);
        throw thrown;
      })
      .catch((e: unknown) => e);
    expect(outcome).toBe(thrown);
    expect(seen[0]).toBe(seen[1]);
    // … and none of them outlive the rollback.
    expect((await db.query(`SELECT k, v FROM ${table} ORDER BY k`)).rows.map((r) => [r.k, Number(r.v)])).toEqual([['kept', 1]]);

    const committed = await db.transaction(async (tx) => (await tx.query(`INSERT INTO ${table} (k, v) VALUES (${p(2)}), (${placeholderList(kind, 2, 3)})`, ['a', 1, 'b', 2])).affected);
    expect(committed).toBe(2);
    expect(Number((await db.query(`SELECT COUNT(*) AS n FROM ${table}`)).rows[0]?.n)).toBe(3);
  });

  it('types each failure: a duplicate key, a missing table, a syntax error', async () => {
    const db = await open(kind);
    const duplicate = await sqlError(db.transaction((tx) => tx.query(`INSERT INTO ${table} (k, v) VALUES (${p(2)})`, ['kept', 3])));
    expect(duplicate).toMatchObject({ kind, failure: 'constraint', duplicate: true, rolledBack: false, connecting: false });
    expect(duplicate.message).toMatch(new RegExp(`^test ${kind}: \\S+: `));

    const nullValue = await sqlError(db.query(`INSERT INTO ${table} (k, v) VALUES (${p(2)})`, ['n', null]));
    expect(nullValue).toMatchObject({ failure: 'constraint', duplicate: false });

    const missing = await sqlError(db.query(`SELECT * FROM ${table}_nowhere`));
    expect(missing).toMatchObject({ failure: 'statement' });
    const syntax = await sqlError(db.query('SELEC 1'));
    expect(syntax).toMatchObject({ failure: 'statement' });
    // A failed statement leaves the pool usable.
    expect((await db.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('fails a statement that waits longer than lockTimeoutMs for another writer as transient', async () => {
    const holder = await open(kind);
    const waiter = await open(kind, { lockTimeoutMs: 300 });
    let release = (): void => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    let held = (): void => undefined;
    const holding = new Promise<void>((resolve) => (held = resolve));
    const holderDone = holder.transaction(async (tx) => {
      await tx.query(`UPDATE ${table} SET v = v + 1 WHERE k = 'kept'`);
      held();
      await released;
    });
    await holding;
    const start = performance.now();
    const error = await sqlError(waiter.transaction((tx) => tx.query(`UPDATE ${table} SET v = v + 1 WHERE k = 'kept'`)));
    release();
    await holderDone;
    expect(error.failure).toBe('transient');
    // InnoDB counts whole seconds: 300 ms is rounded up to 1 s.
    expect(performance.now() - start).toBeLessThan(kind === 'mysql' ? 5000 : 3000);
  });
});

describe('connection failures', () => {
  it.each([
    ['postgres', 'postgres://postgres@127.0.0.1:1/test?connectTimeoutMs=1000'],
    ['mysql', 'mysql://root@127.0.0.1:1/test?connectTimeoutMs=1000'],
  ] as const)('%s: a server that does not answer is a connection failure, met when connecting', async (kind, url) => {
    const db = await openSqlDatabase(parseSqlUrl(url, reader), { label: `test ${kind}`, poolSize: 1, connectTimeoutMs: 5000 });
    opened.push(db);
    const error = await sqlError(db.transaction(async () => undefined));
    expect(error).toMatchObject({ kind, failure: 'connection', connecting: true });
    expect(error.message).toMatch(new RegExp(`^test ${kind}: cannot connect: `));
  });

  it('sqlite: a file that cannot be opened is a connection failure, met when opening', async () => {
    const url = parseSqlUrl(`sqlite:${join(dir, 'no-such-directory', 'x.db')}`, reader);
    const error = await sqlError(openSqlDatabase(url, { label: 'test sqlite', poolSize: 1, connectTimeoutMs: 5000 }));
    expect(error).toMatchObject({ kind: 'sqlite', failure: 'connection', connecting: true });
    expect(error.message).toMatch(/^test sqlite: cannot open: /);
  });
});

describe('driver loading', () => {
  /** The SQL drivers a fresh process has loaded after running `body` (an ES module using the build in dist/). */
  function driversLoadedBy(body: string): string[] {
    const script = `
      import { createRequire } from 'node:module';
      ${body}
      const loaded = Object.keys(createRequire(import.meta.url).cache)
        .map((path) => /node_modules\\/(pg|mysql2|better-sqlite3)\\//.exec(path)?.[1])
        .filter(Boolean);
      console.log(JSON.stringify([...new Set(loaded)].sort()));`;
    return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd(), encoding: 'utf8' })) as string[];
  }

  it('parses any URL without loading a driver, and loads only the driver of the kind opened', () => {
    expect(driversLoadedBy(`
      const { parseSqlUrl } = await import('./dist/sql/url.js');
      for (const url of ['postgres://h/db', 'mysql://h/db', 'sqlite:./x.db']) parseSqlUrl(url, { label: 't', error: Error });`)).toEqual([]);
    expect(driversLoadedBy(`
      const { openStore } = await import('./dist/stores/open-store.js');
      const store = await openStore('sqlite:${join(dir, 'lazy.db')}', { cluster: 'c' });
      await store.close();`)).toEqual(['better-sqlite3']);
    expect(driversLoadedBy(`
      const { parseSqlUrl } = await import('./dist/sql/url.js');
      const { openSqlDatabase } = await import('./dist/sql/open.js');
      const db = await openSqlDatabase(parseSqlUrl('${URLS.postgres}', { label: 't', error: Error }), { label: 't', poolSize: 1, connectTimeoutMs: 5000 });
      await db.query('SELECT 1');
      await db.close();`)).toEqual(['pg']);
  });
});
