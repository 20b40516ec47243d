/**
 * The sync's statements on SQLite. The connection is the SQL layer's (sql/sqlite/database.ts): one
 * handle whose transactions are queued, each `BEGIN IMMEDIATE`, which takes the database's write lock at
 * once, so the token check and the writes of one page are serialised against every other process.
 *
 * Non-guarantees: better-sqlite3 is synchronous; waiting for another process's write lock blocks the
 * event loop for up to the busy timeout (`lockTimeout` for a handle the sync opens).
 */
import { quoteIdentifier, valueTuples } from '../../sql/placeholders.js';
import type { SyncStatements } from './dialect.js';

const q = (name: string) => quoteIdentifier('sqlite', name);

export const sqliteStatements: SyncStatements = {
  createCursorTable: (t) =>
    `CREATE TABLE IF NOT EXISTS ${q(t)} (
      name TEXT PRIMARY KEY,
      cursor_value TEXT,
      token INTEGER NOT NULL DEFAULT 0,
      updated_at_ms INTEGER NOT NULL,
      node TEXT
    )`,
  createRejectsTable: (t) =>
    `CREATE TABLE IF NOT EXISTS ${q(t)} (
      name TEXT NOT NULL,
      fingerprint TEXT NOT NULL,
      record_key TEXT,
      reason TEXT NOT NULL,
      raw TEXT NOT NULL,
      first_seen_ms INTEGER NOT NULL,
      last_seen_ms INTEGER NOT NULL,
      seen INTEGER NOT NULL DEFAULT 1,
      PRIMARY KEY (name, fingerprint)
    )`,
  probeTarget: (t) => `SELECT ${t.columns.map(q).join(', ')} FROM ${q(t.target)} WHERE 1 = 0`,
  // Inserts nothing, but ON CONFLICT (key) is checked when the statement is planned: it fails unless a
  // primary key or unique index covers exactly the key columns.
  probeKey: (t) => ({
    sql: `INSERT INTO ${q(t.target)} (${t.key.map(q).join(', ')}) SELECT ${t.key.map(() => 'NULL').join(', ')} WHERE 0 ON CONFLICT (${t.key.map(q).join(', ')}) DO NOTHING`,
    params: [],
  }),
  insertCursorIfAbsent: (t) => `INSERT INTO ${q(t)} (name, cursor_value, token, updated_at_ms) VALUES (?, NULL, 0, ?) ON CONFLICT (name) DO NOTHING`,
  // No FOR UPDATE in SQLite: BEGIN IMMEDIATE already holds the database's write lock until commit.
  lockCursor: (t) => `SELECT cursor_value, CAST(token AS TEXT) AS token, node FROM ${q(t)} WHERE name = ?`,
  // token <= ?: the fence. A newer owner's token in the row makes this match nothing.
  updateCursor: (t) => `UPDATE ${q(t)} SET cursor_value = ?, token = ?, updated_at_ms = ?, node = ? WHERE name = ? AND token <= ?`,
  upsertRows: (t, count) => {
    const updates = t.columns.filter((c) => !t.key.includes(c)).map((c) => `${q(c)} = excluded.${q(c)}`);
    const onConflict =
      updates.length === 0
        ? 'DO NOTHING'
        : // WHERE on the version: a stale copy of a row (a replayed page) never rolls a newer one back.
          `DO UPDATE SET ${updates.join(', ')}${t.version ? ` WHERE ${q(t.target)}.${q(t.version)} <= excluded.${q(t.version)}` : ''}`;
    return `INSERT INTO ${q(t.target)} (${t.columns.map(q).join(', ')}) VALUES ${valueTuples('sqlite', count, t.columns.length)} ON CONFLICT (${t.key.map(q).join(', ')}) ${onConflict}`;
  },
  upsertRejects: (t, count) =>
    `INSERT INTO ${q(t)} (name, fingerprint, record_key, reason, raw, first_seen_ms, last_seen_ms) VALUES ${valueTuples('sqlite', count, 7)}
     ON CONFLICT (name, fingerprint) DO UPDATE SET reason = excluded.reason, last_seen_ms = excluded.last_seen_ms, seen = ${q(t)}.seen + 1`,
};
