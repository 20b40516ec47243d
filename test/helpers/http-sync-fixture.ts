/**
 * Test helpers of the HTTP sync: the example's fixture API (a real node:http server with faults), a
 * small reader for the target database (SQLite, PostgreSQL, MariaDB) to compare the target with the
 * source, and the target URLs of the test machine.
 */
import { ordersTableDdl, ORDER_COLUMNS, type Order as OrderRecord } from '../../examples/http-sync/orders.js';
import type { Order } from '../../examples/http-sync/fixture-api.js';

export { FixtureApi, mulberry32, type Fault, type HeldRequest, type Order } from '../../examples/http-sync/fixture-api.js';
export { Order as OrderSchema, ORDER_COLUMNS, ordersTableDdl } from '../../examples/http-sync/orders.js';

export type TargetKind = 'sqlite' | 'postgres' | 'mysql';

/** The target databases of the test machine (scripts/services.sh starts the servers). */
export function targetUrl(kind: TargetKind, sqliteFile: string): string {
  if (kind === 'postgres') return 'postgres://postgres@127.0.0.1:5432/test';
  if (kind === 'mysql') return 'mysql://root@127.0.0.1:3306/test';
  return `sqlite:${sqliteFile}`;
}

export interface CursorRow {
  readonly cursor: unknown;
  readonly token: bigint;
  readonly node: string | null;
}

export interface RejectRow {
  readonly recordKey: string | null;
  readonly reason: string;
  readonly raw: unknown;
  readonly seen: number;
}

/** Reads (and sets up, and drops) tables of a target database, with its own connection. */
export class TargetProbe {
  readonly kind: TargetKind;
  readonly #query: (sql: string, params?: unknown[]) => Promise<Record<string, unknown>[]>;
  readonly #close: () => Promise<void>;

  private constructor(kind: TargetKind, query: TargetProbe['query'], close: () => Promise<void>) {
    this.kind = kind;
    this.#query = query;
    this.#close = close;
  }

  static async open(url: string): Promise<TargetProbe> {
    if (url.startsWith('postgres')) {
      const { default: pg } = await import('pg');
      const client = new pg.Client({ connectionString: url });
      client.on('error', () => undefined);
      await client.connect();
      return new TargetProbe('postgres', async (sql, params) => (await client.query(sql, params)).rows, () => client.end());
    }
    if (url.startsWith('mysql') || url.startsWith('mariadb')) {
      const mysql = await import('mysql2/promise');
      const connection = await mysql.createConnection({ uri: url.replace(/^mariadb:/, 'mysql:'), supportBigNumbers: true, bigNumberStrings: true });
      return new TargetProbe('mysql', async (sql, params) => (await connection.query(sql, params))[0] as Record<string, unknown>[], () => connection.end());
    }
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(url.replace(/^sqlite:/, ''), { timeout: 5000 });
    db.pragma('journal_mode = WAL');
    return new TargetProbe(
      'sqlite',
      async (sql, params = []) => {
        const statement = db.prepare(sql);
        if (statement.reader) return statement.all(...params) as Record<string, unknown>[];
        statement.run(...params);
        return [];
      },
      async () => {
        db.close();
      },
    );
  }

  query(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]> {
    return this.#query(sql, params);
  }

  quote(name: string): string {
    return this.kind === 'mysql' ? `\`${name}\`` : `"${name}"`;
  }

  async createOrders(table: string): Promise<void> {
    await this.#query(ordersTableDdl(this.kind, table));
  }

  /** Every row of the orders table, by id, with numbers as numbers. */
  async orders(table: string): Promise<OrderRecord[]> {
    const rows = await this.#query(`SELECT ${ORDER_COLUMNS.join(', ')} FROM ${this.quote(table)} ORDER BY id`);
    return rows.map((r) => ({
      id: Number(r.id),
      customer: String(r.customer),
      amount_cents: Number(r.amount_cents),
      status: String(r.status) as OrderRecord['status'],
      updated_at: String(r.updated_at),
    }));
  }

  /** Ids present more than once (always empty with a primary key; counted to prove it). */
  async duplicateKeys(table: string): Promise<number> {
    const rows = await this.#query(`SELECT id, COUNT(*) AS n FROM ${this.quote(table)} GROUP BY id HAVING COUNT(*) > 1`);
    return rows.length;
  }

  async cursor(table: string, name: string): Promise<CursorRow | undefined> {
    const cast = this.kind === 'mysql' ? 'CAST(token AS CHAR)' : this.kind === 'postgres' ? 'token::text' : 'CAST(token AS TEXT)';
    const row = (await this.#query(`SELECT cursor_value, ${cast} AS token, node FROM ${this.quote(table)} WHERE name = ${this.kind === 'postgres' ? '$1' : '?'}`, [name]))[0];
    if (!row) return undefined;
    return { cursor: row.cursor_value === null ? null : JSON.parse(String(row.cursor_value)), token: BigInt(String(row.token)), node: (row.node as string | null) ?? null };
  }

  async rejects(table: string, name: string): Promise<RejectRow[]> {
    const rows = await this.#query(
      `SELECT record_key, reason, raw, seen FROM ${this.quote(table)} WHERE name = ${this.kind === 'postgres' ? '$1' : '?'} ORDER BY record_key`,
      [name],
    );
    return rows.map((r) => ({ recordKey: (r.record_key as string | null) ?? null, reason: String(r.reason), raw: JSON.parse(String(r.raw)), seen: Number(r.seen) }));
  }

  async drop(...tables: string[]): Promise<void> {
    for (const table of tables) await this.#query(`DROP TABLE IF EXISTS ${this.quote(table)}`);
  }

  close(): Promise<void> {
    return this.#close();
  }
}

/** Differences between the target's rows and the source's valid records (empty arrays: equal). */
export function diffOrders(target: readonly OrderRecord[], source: readonly Order[]): { missing: number[]; extra: number[]; different: number[] } {
  const want = new Map(source.map((r) => [r.id, r]));
  const have = new Map(target.map((r) => [r.id, r]));
  const missing = [...want.keys()].filter((id) => !have.has(id));
  const extra = [...have.keys()].filter((id) => !want.has(id));
  const different = [...want.values()]
    .filter((r) => have.has(r.id))
    .filter((r) => {
      const t = have.get(r.id) as OrderRecord;
      return t.customer !== r.customer || t.amount_cents !== r.amount_cents || t.status !== r.status || t.updated_at !== r.updated_at;
    })
    .map((r) => r.id);
  return { missing, extra, different };
}

/** Compares two `updatedSince` cursors `{ ts, id }`: negative, zero or positive. */
export function compareCursors(a: { ts: string; id: number | null } | null, b: { ts: string; id: number | null } | null): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? -1 : 1;
  const byTime = Date.parse(a.ts) - Date.parse(b.ts);
  if (byTime !== 0) return byTime;
  return (a.id ?? -1) - (b.id ?? -1);
}
