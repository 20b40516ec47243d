/**
 * The example's data contract: the schema of an order as the API sends it (zod), and the target table.
 */
import { z } from 'zod';

/** An order as the API sends it. Records failing this land in the rejects table, with the reason. */
export const Order = z.object({
  id: z.number().int().positive(),
  customer: z.string().min(1),
  amount_cents: z.number().int().nonnegative(),
  status: z.enum(['new', 'paid', 'shipped', 'cancelled']),
  updated_at: z.string().datetime(),
});
export type Order = z.infer<typeof Order>;

/** The target table's columns: the API's fields, one to one. */
export const ORDER_COLUMNS = ['id', 'customer', 'amount_cents', 'status', 'updated_at'] as const;

/**
 * The target table, per database. `updated_at` is ISO-8601 text in one format (the API's), so SQL `<=`
 * orders it: it serves as the sync's version column.
 */
export function ordersTableDdl(kind: 'sqlite' | 'postgres' | 'mysql', table: string): string {
  switch (kind) {
    case 'postgres':
      return `CREATE TABLE IF NOT EXISTS "${table}" (id BIGINT PRIMARY KEY, customer TEXT NOT NULL, amount_cents BIGINT NOT NULL, status TEXT NOT NULL, updated_at TEXT NOT NULL)`;
    case 'mysql':
      return `CREATE TABLE IF NOT EXISTS \`${table}\` (id BIGINT PRIMARY KEY, customer VARCHAR(100) NOT NULL, amount_cents BIGINT NOT NULL, status VARCHAR(20) NOT NULL, updated_at VARCHAR(30) NOT NULL) ENGINE=InnoDB`;
    default:
      return `CREATE TABLE IF NOT EXISTS "${table}" (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount_cents INTEGER NOT NULL, status TEXT NOT NULL, updated_at TEXT NOT NULL)`;
  }
}

/** Creates the orders table when missing, in the database a `sqlite:`, `postgres://` or `mysql://` URL names. */
export async function createOrdersTable(url: string, table: string): Promise<void> {
  if (/^postgres(ql)?:/i.test(url)) {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(ordersTableDdl('postgres', table)).finally(() => client.end());
  } else if (/^(mysql|mariadb):/i.test(url)) {
    const mysql = await import('mysql2/promise');
    const connection = await mysql.createConnection({ uri: url.replace(/^mariadb:/i, 'mysql:') });
    await connection.query(ordersTableDdl('mysql', table)).finally(() => connection.end());
  } else {
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(url.replace(/^sqlite:(\/\/)?/i, ''), { timeout: 2000 });
    try {
      db.exec(ordersTableDdl('sqlite', table));
    } finally {
      db.close();
    }
  }
}
