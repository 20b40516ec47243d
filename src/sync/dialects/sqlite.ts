/**
 * The sync's statements on SQLite: upserts by `ON CONFLICT (key)` (on-conflict.ts). The connection is the
 * SQL layer's (sql/sqlite/database.ts): one handle whose transactions are queued, each `BEGIN IMMEDIATE`,
 * which takes the database's write lock at once, so the token check and the writes of one page are
 * serialised against every other process.
 *
 * Non-guarantees: better-sqlite3 is synchronous; waiting for another process's write lock blocks the
 * event loop for up to the busy timeout (`lockTimeout` for a handle the sync opens).
 */
import { quoteIdentifier } from '../../sql/placeholders.js';
import type { SyncStatements } from './dialect.js';
import { onConflictStatements } from './on-conflict.js';

export const sqliteStatements: SyncStatements = {
  ...onConflictStatements('sqlite'),
  // No FOR UPDATE in SQLite: BEGIN IMMEDIATE already holds the database's write lock until commit.
  lockCursor: (t) => `SELECT cursor_value, CAST(token AS TEXT) AS token, node FROM ${quoteIdentifier('sqlite', t)} WHERE name = ?`,
};
