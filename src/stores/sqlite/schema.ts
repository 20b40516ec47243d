/**
 * SQLite schema, created and migrated automatically when a store opens the file. `baton_meta` holds the
 * schema version; a file written by a newer baton is refused instead of being misread.
 *
 * Session times (`expires_at`, `renewed_at`) are host-monotonic milliseconds, not wall time: every process
 * on the host reads the same monotonic clock, and it does not jump when the wall clock is set.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { BatonError } from '../../core/errors.js';

export const SCHEMA_VERSION = 1;

const MIGRATIONS: readonly string[] = [
  // v1
  `
  CREATE TABLE baton_sessions (
    cluster     TEXT NOT NULL,
    id          TEXT NOT NULL,
    info        TEXT NOT NULL,
    process     TEXT NOT NULL,
    ttl_ms      INTEGER NOT NULL,
    opened_at   REAL NOT NULL,
    renewed_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    PRIMARY KEY (cluster, id)
  ) WITHOUT ROWID;
  CREATE TABLE baton_owners (
    cluster     TEXT NOT NULL,
    key         TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    token       INTEGER NOT NULL,
    acquired_at INTEGER NOT NULL,
    PRIMARY KEY (cluster, key)
  ) WITHOUT ROWID;
  CREATE INDEX baton_owners_by_session ON baton_owners (cluster, session_id);
  CREATE TABLE baton_records (
    cluster     TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (cluster, key)
  ) WITHOUT ROWID;
  CREATE TABLE baton_changes (
    cluster     TEXT NOT NULL,
    scope       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    PRIMARY KEY (cluster, scope)
  ) WITHOUT ROWID;
  INSERT INTO baton_meta (name, value) VALUES ('token_seq', 0);
  `,
];

/** Creates or upgrades the schema inside one write transaction, so concurrent openers do not race. */
export function migrate(db: BetterSqlite3.Database, file: string): void {
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS baton_meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID');
    const row = db.prepare(`SELECT value FROM baton_meta WHERE name = 'schema_version'`).get() as
      | { value: number }
      | undefined;
    const current = row?.value ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new BatonError(
        'STORE_SCHEMA',
        `sqlite store: ${file} has schema version ${current}, newer than this baton understands (${SCHEMA_VERSION}); upgrade baton`,
      );
    }
    for (let version = current + 1; version <= SCHEMA_VERSION; version++) {
      db.exec(MIGRATIONS[version - 1] as string);
    }
    db.prepare(`INSERT INTO baton_meta (name, value) VALUES ('schema_version', ?)
                ON CONFLICT (name) DO UPDATE SET value = excluded.value`).run(SCHEMA_VERSION);
  }).immediate();
}
