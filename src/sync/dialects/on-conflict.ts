/**
 * The sync's statements that PostgreSQL and SQLite write alike: both upsert with `INSERT … ON CONFLICT
 * (key) DO UPDATE` and differ only in placeholders and integer type names. postgres.ts and sqlite.ts add
 * what is their own (the cursor row's lock).
 */
import { placeholder, quoteIdentifier, valueTuples } from '../../sql/placeholders.js';
import type { SyncStatements } from './dialect.js';

export function onConflictStatements(kind: 'postgres' | 'sqlite'): Omit<SyncStatements, 'lockCursor'> {
  const q = (name: string) => quoteIdentifier(kind, name);
  const p = placeholder(kind);
  // 64-bit integers: SQLite's INTEGER is 64-bit already.
  const bigint = kind === 'postgres' ? 'BIGINT' : 'INTEGER';
  return {
    createCursorTable: (t) =>
      `CREATE TABLE IF NOT EXISTS ${q(t)} (
        name TEXT PRIMARY KEY,
        cursor_value TEXT,
        token ${bigint} NOT NULL DEFAULT 0,
        updated_at_ms ${bigint} NOT NULL,
        node TEXT
      )`,
    createRejectsTable: (t) =>
      `CREATE TABLE IF NOT EXISTS ${q(t)} (
        name TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        record_key TEXT,
        reason TEXT NOT NULL,
        raw TEXT NOT NULL,
        first_seen_ms ${bigint} NOT NULL,
        last_seen_ms ${bigint} NOT NULL,
        seen INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (name, fingerprint)
      )`,
    probeTarget: (t) => `SELECT ${t.columns.map(q).join(', ')} FROM ${q(t.target)} WHERE 1 = 0`,
    // Inserts nothing, but ON CONFLICT (key) is checked when the statement is planned: it fails unless a
    // primary key or unique index covers exactly the key columns. (SQLite needs the WHERE to parse ON as
    // the upsert's, not a join's.)
    probeKey: (t) => ({
      sql: `INSERT INTO ${q(t.target)} (${t.key.map(q).join(', ')}) SELECT ${t.key.map(() => 'NULL').join(', ')} WHERE 1 = 0 ON CONFLICT (${t.key.map(q).join(', ')}) DO NOTHING`,
      params: [],
    }),
    // ON CONFLICT DO NOTHING: two first runs racing both see the row afterwards; neither fails.
    insertCursorIfAbsent: (t) => `INSERT INTO ${q(t)} (name, cursor_value, token, updated_at_ms) VALUES (${p(1)}, NULL, 0, ${p(2)}) ON CONFLICT (name) DO NOTHING`,
    // token <= the last parameter: the fence. A newer owner's token in the row makes this match nothing.
    updateCursor: (t) => `UPDATE ${q(t)} SET cursor_value = ${p(1)}, token = ${p(2)}, updated_at_ms = ${p(3)}, node = ${p(4)} WHERE name = ${p(5)} AND token <= ${p(6)}`,
    upsertRows: (t, count) => {
      const updates = t.columns.filter((c) => !t.key.includes(c)).map((c) => `${q(c)} = EXCLUDED.${q(c)}`);
      const onConflict =
        updates.length === 0
          ? 'DO NOTHING'
          : // WHERE on the version: a stale copy of a row (a replayed page) never rolls a newer one back.
            `DO UPDATE SET ${updates.join(', ')}${t.version ? ` WHERE ${q(t.target)}.${q(t.version)} <= EXCLUDED.${q(t.version)}` : ''}`;
      return `INSERT INTO ${q(t.target)} (${t.columns.map(q).join(', ')}) VALUES ${valueTuples(kind, count, t.columns.length)} ON CONFLICT (${t.key.map(q).join(', ')}) ${onConflict}`;
    },
    upsertRejects: (t, count) =>
      `INSERT INTO ${q(t)} (name, fingerprint, record_key, reason, raw, first_seen_ms, last_seen_ms) VALUES ${valueTuples(kind, count, 7)}
       ON CONFLICT (name, fingerprint) DO UPDATE SET reason = EXCLUDED.reason, last_seen_ms = EXCLUDED.last_seen_ms, seen = ${q(t)}.seen + 1`,
  };
}
