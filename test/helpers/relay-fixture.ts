/**
 * Real services for relay tests: fresh PostgreSQL and MariaDB databases with a random suffix (dropped
 * after), a `ledger` table in each (an append-only log: duplicates and order are visible), the relay's
 * statements, and cleanup of the topology's exchanges and queues.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../src/core/logger.js';
import { deleteTopology } from '../../src/relay/amqp-connection.js';
import type { Topology } from '../../src/relay/topology.js';
import type { StatementConfig } from '../../src/relay/statements.js';
import type { Options } from 'amqplib';
import { encodeBundle, type Envelope } from '../../src/relay/envelope.js';
import { SIGNATURE_HEADERS, type Signer } from '../../src/relay/signature.js';

export const AMQP_URL = process.env.BATON_TEST_AMQP ?? 'amqp://guest:guest@127.0.0.1:5672';
export const PG_ADMIN = 'postgres://postgres@127.0.0.1:5432/postgres';
export const MYSQL_ADMIN = 'mysql://root@127.0.0.1:3306/mysql';
export const KEYS = { current: 'k1', keys: { k1: 'relay-test-key-k1-0123456789abcdefghij' } };

/** A message as a relay's publisher sends it: `body` (a bundle, or any text) signed by `signer`, if given. */
export function message(body: string | readonly Envelope[], signer?: Signer): { content: Buffer; options: Options.Publish } {
  const content = Buffer.from(typeof body === 'string' ? body : encodeBundle(body));
  const signature = signer?.sign(content);
  const headers = signature ? { [SIGNATURE_HEADERS.kid]: signature.kid, [SIGNATURE_HEADERS.sig]: signature.sig } : {};
  return { content, options: { persistent: true, headers } };
}

/**
 * `put` appends (key, value) to the ledger: applied twice, it shows twice; applied out of order, the
 * ledger's auto-increment id shows it. `unique` inserts into a table with a primary key (a poison message
 * where the row exists already).
 */
export const STATEMENTS: Record<string, StatementConfig> = {
  put: {
    params: { k: 'string', v: 'integer' },
    postgres: 'INSERT INTO ledger (k, v) VALUES ($1, $2)',
    mysql: 'INSERT INTO ledger (k, v) VALUES (?, ?)',
    sqlite: 'INSERT INTO ledger (k, v) VALUES (?, ?)',
  },
  unique: {
    params: { k: 'string' },
    postgres: 'INSERT INTO uniq (k) VALUES ($1)',
    mysql: 'INSERT INTO uniq (k) VALUES (?)',
    sqlite: 'INSERT INTO uniq (k) VALUES (?)',
  },
};

export type Kind = 'postgres' | 'mysql' | 'sqlite';

/** Where SQLite test databases live (removed with their database). */
const SQLITE_DIR = join(tmpdir(), 'baton-relay-tests');

export interface TestDatabase {
  readonly name: string;
  readonly kind: Kind;
  readonly url: string;
}

export const suffix = () => randomBytes(4).toString('hex');

export async function createDatabase(kind: Kind, name: string): Promise<TestDatabase> {
  if (kind === 'sqlite') {
    mkdirSync(SQLITE_DIR, { recursive: true });
    const file = join(SQLITE_DIR, `${name}.db`);
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(file);
    try {
      db.exec('CREATE TABLE ledger (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL, v INTEGER NOT NULL); CREATE TABLE uniq (k TEXT PRIMARY KEY)');
    } finally {
      db.close();
    }
    return { name, kind, url: `sqlite:${file}` };
  }
  if (kind === 'postgres') {
    const { default: pg } = await import('pg');
    const admin = new pg.Client({ connectionString: PG_ADMIN });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
    } finally {
      await admin.end();
    }
    const url = `postgres://postgres@127.0.0.1:5432/${name}`;
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query('CREATE TABLE ledger (id BIGSERIAL PRIMARY KEY, k TEXT NOT NULL, v INTEGER NOT NULL)');
      await client.query('CREATE TABLE uniq (k TEXT PRIMARY KEY)');
    } finally {
      await client.end();
    }
    return { name, kind, url };
  }
  const mysql = (await import('mysql2/promise')).default;
  const admin = await mysql.createConnection({ uri: MYSQL_ADMIN });
  try {
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.query(`CREATE TABLE ${name}.ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY, k VARCHAR(191) NOT NULL, v INT NOT NULL) ENGINE=InnoDB`);
    await admin.query(`CREATE TABLE ${name}.uniq (k VARCHAR(191) PRIMARY KEY) ENGINE=InnoDB`);
  } finally {
    await admin.end();
  }
  return { name, kind, url: `mysql://root@127.0.0.1:3306/${name}` };
}

export async function dropDatabase(db: TestDatabase): Promise<void> {
  if (db.kind === 'sqlite') {
    const file = db.url.slice('sqlite:'.length);
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });
    return;
  }
  if (db.kind === 'postgres') {
    const { default: pg } = await import('pg');
    const admin = new pg.Client({ connectionString: PG_ADMIN });
    await admin.connect();
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${db.name} WITH (FORCE)`);
    } finally {
      await admin.end();
    }
    return;
  }
  const mysql = (await import('mysql2/promise')).default;
  const admin = await mysql.createConnection({ uri: MYSQL_ADMIN });
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${db.name}`);
  } finally {
    await admin.end();
  }
}

/** Runs one query on a database with a connection of its own. */
export async function sql<R = Record<string, unknown>>(db: TestDatabase, text: string, values: unknown[] = []): Promise<R[]> {
  if (db.kind === 'sqlite') {
    const { default: Database } = await import('better-sqlite3');
    const handle = new Database(db.url.slice('sqlite:'.length), { timeout: 5000 });
    try {
      const statement = handle.prepare(text.replace(/\$\d+/g, '?'));
      return (statement.reader ? statement.all(...values) : (statement.run(...values), [])) as R[];
    } finally {
      handle.close();
    }
  }
  if (db.kind === 'postgres') {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      return (await client.query(text, values)).rows as R[];
    } finally {
      await client.end();
    }
  }
  const mysql = (await import('mysql2/promise')).default;
  const connection = await mysql.createConnection({ uri: db.url, supportBigNumbers: true, bigNumberStrings: true });
  try {
    const [rows] = await connection.query(text.replace(/\$\d+/g, '?'), values);
    return rows as R[];
  } finally {
    await connection.end();
  }
}

/** The ledger of a database: per key, the values in the order they were applied. */
export async function ledger(db: TestDatabase): Promise<Map<string, number[]>> {
  const rows = await sql<{ k: string; v: number | string }>(db, 'SELECT k, v FROM ledger ORDER BY id');
  const byKey = new Map<string, number[]>();
  for (const row of rows) {
    let list = byKey.get(row.k);
    if (!list) byKey.set(row.k, (list = []));
    list.push(Number(row.v));
  }
  return byKey;
}

export async function count(db: TestDatabase, text: string, values: unknown[] = []): Promise<number> {
  const rows = await sql<{ n: number | string }>(db, text, values);
  return Number(rows[0]?.n ?? 0);
}

/** Deletes every exchange and queue of a topology. */
export async function deleteBrokerObjects(topology: Topology): Promise<void> {
  const amqp = (await import('amqplib')).default;
  const connection = await amqp.connect(AMQP_URL);
  connection.on('error', () => undefined);
  try {
    const channel = await connection.createChannel();
    await deleteTopology(channel, topology);
    await channel.close();
  } finally {
    await connection.close();
  }
}

/** Polls `check` every 200 ms until it returns true or `timeoutMs` passes; returns its last answer. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A logger that keeps warnings and errors (printed by a failing test) and drops the rest. */
export function recordingLogger(lines: string[] = []): Logger & { lines: string[] } {
  const keep = (level: string) => (obj: object, msg?: string) => {
    const err = (obj as { err?: Error }).err;
    lines.push(`${level} ${msg ?? ''} ${err ? err.message : ''} ${JSON.stringify({ ...obj, err: undefined })}`);
    if (lines.length > 2000) lines.splice(0, 1000);
  };
  const logger: Logger & { lines: string[] } = {
    lines,
    debug: () => undefined,
    info: () => undefined,
    warn: keep('warn'),
    error: keep('error'),
    child: () => logger,
  };
  return logger;
}
