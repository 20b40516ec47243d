/**
 * The sync's statements on PostgreSQL: upserts by `ON CONFLICT (key)`. The connection — a pool, one
 * connection per transaction, `lock_timeout` per transaction so a writer stuck behind a paused one fails
 * instead of waiting forever — is the SQL layer's (sql/postgres/database.ts).
 */
import { quoteIdentifier, valueTuples } from '../../sql/placeholders.js';
import type { SyncStatements } from './dialect.js';

const q = (name: string) => quoteIdentifier('postgres', name);

export const postgresStatements: SyncStatements = {
  createCursorTable: (t) =>
    `CREATE TABLE IF NOT EXISTS ${q(t)} (
      name TEXT PRIMARY KEY,
      cursor_value TEXT,
      token BIGINT NOT NULL DEFAULT 0,
      updated_at_ms BIGINT NOT NULL,
      node TEXT
    )`,
  createRejectsTable: (t) =>
    `CREATE TABLE IF NOT EXISTS ${q(t)} (
      name TEXT NOT NULL,
      fingerprint TEXT NOT NULL,
      record_key TEXT,
      reason TEXT NOT NULL,
      raw TEXT NOT NULL,
      first_seen_ms BIGINT NOT NULL,
      last_seen_ms BIGINT NOT NULL,
      seen INTEGER NOT NULL DEFAULT 1,
      PRIMARY KEY (name, fingerprint)
    )`,
  probeTarget: (t) => `SELECT ${t.columns.map(q).join(', ')} FROM ${q(t.target)} WHERE 1 = 0`,
  // Inserts nothing, but ON CONFLICT (key) is checked when the statement is planned: it fails unless a
  // primary key or unique index covers exactly the key columns.
  probeKey: (t) => ({
    sql: `INSERT INTO ${q(t.target)} (${t.key.map(q).join(', ')}) SELECT ${t.key.map(() => 'NULL').join(', ')} WHERE false ON CONFLICT (${t.key.map(q).join(', ')}) DO NOTHING`,
    params: [],
  }),
  // ON CONFLICT DO NOTHING: two first runs racing both see the row afterwards; neither fails.
  insertCursorIfAbsent: (t) => `INSERT INTO ${q(t)} (name, cursor_value, token, updated_at_ms) VALUES ($1, NULL, 0, $2) ON CONFLICT (name) DO NOTHING`,
  // FOR UPDATE: holds the row until commit, so the token check and the cursor write see no other writer.
  lockCursor: (t) => `SELECT cursor_value, token::text AS token, node FROM ${q(t)} WHERE name = $1 FOR UPDATE`,
  // token <= $6: the fence. A newer owner's token in the row makes this match nothing.
  updateCursor: (t) => `UPDATE ${q(t)} SET cursor_value = $1, token = $2, updated_at_ms = $3, node = $4 WHERE name = $5 AND token <= $6`,
  upsertRows: (t, count) => {
    const updates = t.columns.filter((c) => !t.key.includes(c)).map((c) => `${q(c)} = EXCLUDED.${q(c)}`);
    const onConflict =
      updates.length === 0
        ? 'DO NOTHING'
        : // WHERE on the version: a stale copy of a row (a replayed page) never rolls a newer one back.
          `DO UPDATE SET ${updates.join(', ')}${t.version ? ` WHERE ${q(t.target)}.${q(t.version)} <= EXCLUDED.${q(t.version)}` : ''}`;
    return `INSERT INTO ${q(t.target)} (${t.columns.map(q).join(', ')}) VALUES ${valueTuples('postgres', count, t.columns.length)} ON CONFLICT (${t.key.map(q).join(', ')}) ${onConflict}`;
  },
  upsertRejects: (t, count) =>
    `INSERT INTO ${q(t)} (name, fingerprint, record_key, reason, raw, first_seen_ms, last_seen_ms) VALUES ${valueTuples('postgres', count, 7)}
     ON CONFLICT (name, fingerprint) DO UPDATE SET reason = EXCLUDED.reason, last_seen_ms = EXCLUDED.last_seen_ms, seen = ${q(t)}.seen + 1`,
};
