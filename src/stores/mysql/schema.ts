/**
 * MySQL/MariaDB schema, created automatically when a store opens. Every statement is idempotent
 * (`CREATE TABLE IF NOT EXISTS`, `INSERT IGNORE` of fixed rows), so many nodes may open at once: the
 * server's metadata locks serialise the DDL and the primary keys dedupe the rows. `<prefix>meta` holds the
 * schema version; a database written by a newer baton is refused instead of being misread.
 *
 * Times are BIGINT milliseconds of the SERVER's wall clock (see statements.ts `NOW_MS`). Keys and cluster
 * names are VARBINARY (byte order, exact match). Tables are InnoDB: row locks and durable commits are
 * what the atomicity and token arguments rest on.
 */
import { BatonError } from '../../core/errors.js';
import type { Tables } from './statements.js';

export const SCHEMA_VERSION = 1;

const TABLE_OPTIONS = 'ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4';

function createTables(t: Tables): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${t.meta} (
       name  VARBINARY(64) NOT NULL PRIMARY KEY,
       value BIGINT NOT NULL
     ) ${TABLE_OPTIONS}`,
    `CREATE TABLE IF NOT EXISTS ${t.sessions} (
       cluster      VARBINARY(255) NOT NULL,
       id           VARBINARY(64) NOT NULL,
       info         LONGTEXT NOT NULL,
       ttl_ms       BIGINT NOT NULL,
       opened_at    BIGINT NOT NULL,
       renewed_at   BIGINT NOT NULL,
       expires_at   BIGINT NOT NULL,
       conn_id      BIGINT NULL,
       conn_account VARCHAR(300) NULL,
       server_name  VARCHAR(300) NULL,
       server_boot  BIGINT NULL,
       PRIMARY KEY (cluster, id)
     ) ${TABLE_OPTIONS}`,
    `CREATE TABLE IF NOT EXISTS ${t.owners} (
       cluster     VARBINARY(255) NOT NULL,
       k           VARBINARY(1024) NOT NULL,
       session_id  VARBINARY(64) NOT NULL,
       token       BIGINT NOT NULL,
       acquired_at BIGINT NOT NULL,
       PRIMARY KEY (cluster, k),
       KEY by_session (cluster, session_id)
     ) ${TABLE_OPTIONS}`,
    `CREATE TABLE IF NOT EXISTS ${t.records} (
       cluster    VARBINARY(255) NOT NULL,
       k          VARBINARY(1024) NOT NULL,
       value      LONGTEXT NOT NULL,
       version    INT NOT NULL,
       updated_at BIGINT NOT NULL,
       PRIMARY KEY (cluster, k)
     ) ${TABLE_OPTIONS}`,
    `CREATE TABLE IF NOT EXISTS ${t.changes} (
       cluster VARBINARY(255) NOT NULL,
       scope   VARBINARY(16) NOT NULL,
       version BIGINT NOT NULL,
       PRIMARY KEY (cluster, scope)
     ) ${TABLE_OPTIONS}`,
    // IGNORE: a concurrent opener inserted them first, or they exist; token_seq must never be reset.
    `INSERT IGNORE INTO ${t.meta} (name, value) VALUES ('schema_version', ${SCHEMA_VERSION}), ('token_seq', 0)`,
  ];
}

type Run = (sql: string) => Promise<unknown>;

/** Creates the schema when missing and checks its version. @throws BatonError STORE_SCHEMA when newer. */
export async function migrate(run: Run, t: Tables, shown: string): Promise<void> {
  for (const sql of createTables(t)) await run(sql);
  const rows = (await run(`SELECT value FROM ${t.meta} WHERE name = 'schema_version'`)) as { value: string }[];
  const current = Number(rows[0]?.value ?? 0);
  if (current > SCHEMA_VERSION) {
    throw new BatonError(
      'STORE_SCHEMA',
      `mysql store ${shown}: schema version ${current} in ${t.meta} is newer than this baton understands (${SCHEMA_VERSION}); upgrade baton`,
    );
  }
}
