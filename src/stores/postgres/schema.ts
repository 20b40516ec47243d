/**
 * PostgreSQL schema, created and migrated automatically when a handle opens. Everything lives in one
 * schema (default `baton`, URL option `schema`), shared by every cluster: rows carry the cluster name.
 *
 * Concurrent openers are serialised by a transaction-level advisory lock, because `CREATE … IF NOT
 * EXISTS` alone is not safe against a concurrent create (it can fail with a unique violation on the
 * catalog). `meta.schema_version` lets a newer baton's schema be refused instead of misread.
 *
 * Times are `timestamptz` from the server's clock (`clock_timestamp()`), never from a node. Keys use the
 * "C" collation so they sort by code point, like JavaScript strings do for the BMP.
 */
import { BatonError } from '../../core/errors.js';
import { quoteIdentifier } from '../../sql/placeholders.js';
import type { PgConnection } from './connection.js';

export const SCHEMA_VERSION = 1;

function migrations(s: string): readonly string[] {
  return [
    // v1
    `
    CREATE TABLE ${s}.sessions (
      cluster       text NOT NULL,
      id            text COLLATE "C" NOT NULL,
      info          text NOT NULL,
      ttl_ms        integer NOT NULL CHECK (ttl_ms > 0),
      opened_at     timestamptz NOT NULL,
      renewed_at    timestamptz NOT NULL,
      expires_at    timestamptz NOT NULL,
      -- The backend serving the session's handle (crash detection); NULL when crashDetection=false.
      backend_pid   integer,
      backend_start timestamptz,
      PRIMARY KEY (cluster, id)
    );
    CREATE TABLE ${s}.owners (
      cluster     text NOT NULL,
      key         text COLLATE "C" NOT NULL,
      session_id  text COLLATE "C" NOT NULL,
      token       bigint NOT NULL,
      acquired_at timestamptz NOT NULL,
      PRIMARY KEY (cluster, key)
    );
    CREATE INDEX owners_by_session ON ${s}.owners (cluster, session_id);
    CREATE TABLE ${s}.records (
      cluster    text NOT NULL,
      key        text COLLATE "C" NOT NULL,
      value      text NOT NULL,
      version    integer NOT NULL,
      updated_at timestamptz NOT NULL,
      PRIMARY KEY (cluster, key)
    );
    -- One sequence for every key of every cluster: strictly increasing per key as well, never reused
    -- (nextval is not rolled back), and durable across restarts (WAL-logged ahead of use).
    CREATE SEQUENCE ${s}.token_seq AS bigint NO CYCLE;
    `,
  ];
}

/**
 * Indexes added within schema version 1: an older baton uses the same tables and ignores them, so adding
 * them does not lock older nodes out the way a version bump would. Each is needed at scale: the reaper's
 * frequent round reads the expiry range, the crash watch finds the next backend of the ring, without
 * reading every session (100 nodes × 100 sessions × 5 rounds a second otherwise).
 */
function indexes(s: string): readonly { readonly name: string; readonly sql: string }[] {
  return [
    { name: 'sessions_by_expiry', sql: `CREATE INDEX IF NOT EXISTS sessions_by_expiry ON ${s}.sessions (cluster, expires_at)` },
    { name: 'sessions_by_backend', sql: `CREATE INDEX IF NOT EXISTS sessions_by_backend ON ${s}.sessions (cluster, backend_pid)` },
  ];
}

/** Creates or upgrades the schema in one transaction under an advisory lock. @throws StoreUnavailableError, BatonError(STORE_SCHEMA). */
export async function migrate(connection: PgConnection, schema: string, shown: string): Promise<void> {
  const s = quoteIdentifier('postgres', schema);
  // Fast path without DDL: a role that may only use the tables (no CREATE on the database) can open a
  // schema an administrator created, and most opens take no lock at all.
  const extra = indexes(s);
  const [found] = await connection.query<{ meta: string | null; missing: number }>(
    `SELECT to_regclass($1)::text AS meta, (SELECT count(*) FROM unnest($2::text[]) i WHERE to_regclass(i) IS NULL)::int AS missing`,
    [`${s}.meta`, extra.map((i) => `${s}.${i.name}`)],
  );
  if (found?.meta && found.missing === 0) {
    const [row] = await connection.query<{ value: string }>(`SELECT value FROM ${s}.meta WHERE name = 'schema_version'`);
    if (row && Number(row.value) === SCHEMA_VERSION) return;
  }
  await connection.query('BEGIN');
  try {
    // Serialises concurrent openers of this schema (any cluster); released at COMMIT/ROLLBACK.
    await connection.query(`SELECT pg_advisory_xact_lock(hashtext('baton.schema.' || $1::text))`, [schema]);
    await connection.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await connection.query(`CREATE TABLE IF NOT EXISTS ${s}.meta (name text PRIMARY KEY, value text NOT NULL)`);
    const rows = await connection.query<{ value: string }>(`SELECT value FROM ${s}.meta WHERE name = 'schema_version'`);
    const current = rows[0] ? Number(rows[0].value) : 0;
    if (current > SCHEMA_VERSION) {
      throw new BatonError(
        'STORE_SCHEMA',
        `postgres store ${JSON.stringify(shown)}: schema ${schema} has version ${current}, newer than this baton understands (${SCHEMA_VERSION}); upgrade baton`,
      );
    }
    const all = migrations(s);
    for (let version = current + 1; version <= SCHEMA_VERSION; version++) {
      await connection.query(all[version - 1] as string);
    }
    for (const index of extra) await connection.query(index.sql);
    await connection.query(
      `INSERT INTO ${s}.meta (name, value) VALUES ('schema_version', $1)
       ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
      [String(SCHEMA_VERSION)],
    );
    await connection.query('COMMIT');
  } catch (error) {
    await connection.query('ROLLBACK').catch(() => undefined); // the original error is the one to report
    throw error;
  }
}
