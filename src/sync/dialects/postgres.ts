/**
 * The sync's statements on PostgreSQL: upserts by `ON CONFLICT (key)` (on-conflict.ts). The connection —
 * a pool, one connection per transaction, `lock_timeout` per transaction so a writer stuck behind a paused
 * one fails instead of waiting forever — is the SQL layer's (sql/postgres/database.ts).
 */
import { quoteIdentifier } from '../../sql/placeholders.js';
import type { SyncStatements } from './dialect.js';
import { onConflictStatements } from './on-conflict.js';

export const postgresStatements: SyncStatements = {
  ...onConflictStatements('postgres'),
  // FOR UPDATE: holds the row until commit, so the token check and the cursor write see no other writer.
  lockCursor: (t) => `SELECT cursor_value, token::text AS token, node FROM ${quoteIdentifier('postgres', t)} WHERE name = $1 FOR UPDATE`,
};
