/**
 * The sync's statements on MySQL / MariaDB. Upserts are `INSERT … ON DUPLICATE KEY UPDATE`: the target
 * table needs a PRIMARY KEY or UNIQUE index on exactly the key columns, and no other unique index a row
 * could collide on. The connection — a pool, one connection per transaction, InnoDB's lock wait bounded
 * per transaction — is the SQL layer's (sql/mysql/database.ts).
 */
import { quoteIdentifier, valueTuples } from '../../sql/placeholders.js';
import type { SyncStatements } from './dialect.js';

const q = (name: string) => quoteIdentifier('mysql', name);

export const mysqlStatements: SyncStatements = {
  createCursorTable: (t) =>
    `CREATE TABLE IF NOT EXISTS ${q(t)} (
      name VARCHAR(191) NOT NULL PRIMARY KEY,
      cursor_value TEXT NULL,
      token BIGINT NOT NULL DEFAULT 0,
      updated_at_ms BIGINT NOT NULL,
      node VARCHAR(255) NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  createRejectsTable: (t) =>
    `CREATE TABLE IF NOT EXISTS ${q(t)} (
      name VARCHAR(191) NOT NULL,
      fingerprint CHAR(64) NOT NULL,
      record_key VARCHAR(255) NULL,
      reason TEXT NOT NULL,
      raw LONGTEXT NOT NULL,
      first_seen_ms BIGINT NOT NULL,
      last_seen_ms BIGINT NOT NULL,
      seen INT NOT NULL DEFAULT 1,
      PRIMARY KEY (name, fingerprint)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  probeTarget: (t) => `SELECT ${t.columns.map(q).join(', ')} FROM ${q(t.target)} WHERE 1 = 0`,
  // ON DUPLICATE KEY names no key: read the unique indexes and check that one covers exactly the key.
  probeKey: (t) => {
    const [schema, table] = t.target.includes('.') ? t.target.split('.') : [undefined, t.target];
    return {
      sql: `SELECT INDEX_NAME AS name, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ',') AS cols
            FROM information_schema.STATISTICS
            WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND NON_UNIQUE = 0
            GROUP BY INDEX_NAME`,
      params: [schema ?? null, table as string],
      keyCovered: (rows) => rows.some((r) => String(r.cols).split(',').sort().join(',') === [...t.key].sort().join(',')),
    };
  },
  // "name = name" makes the duplicate a no-op without INSERT IGNORE, which would also swallow real errors.
  insertCursorIfAbsent: (t) => `INSERT INTO ${q(t)} (name, cursor_value, token, updated_at_ms) VALUES (?, NULL, 0, ?) ON DUPLICATE KEY UPDATE name = name`,
  // FOR UPDATE: a locking read of the latest committed row (not the transaction's snapshot), held until commit.
  lockCursor: (t) => `SELECT cursor_value, CAST(token AS CHAR) AS token, node FROM ${q(t)} WHERE name = ? FOR UPDATE`,
  // token <= ?: the fence. A newer owner's token in the row makes this match nothing. Tokens travel as
  // decimal text; CAST keeps the comparison in integers (a text operand would compare as a double).
  updateCursor: (t) =>
    `UPDATE ${q(t)} SET cursor_value = ?, token = CAST(? AS SIGNED), updated_at_ms = ?, node = ? WHERE name = ? AND token <= CAST(? AS SIGNED)`,
  upsertRows: (t, count) => {
    const others = t.columns.filter((c) => !t.key.includes(c));
    let updates: string[];
    if (t.version) {
      // Assignments run left to right and see earlier ones: every column is compared against the stored
      // version before the version itself is assigned, last. A stale copy (older version) changes nothing.
      const newer = `${q(t.version)} <= VALUES(${q(t.version)})`;
      updates = others.filter((c) => c !== t.version).map((c) => `${q(c)} = IF(${newer}, VALUES(${q(c)}), ${q(c)})`);
      updates.push(`${q(t.version)} = IF(${newer}, VALUES(${q(t.version)}), ${q(t.version)})`);
    } else {
      updates = others.map((c) => `${q(c)} = VALUES(${q(c)})`);
    }
    // With only key columns there is nothing to update: re-assigning the first key makes the duplicate a no-op.
    if (updates.length === 0) updates = [`${q(t.key[0] as string)} = ${q(t.key[0] as string)}`];
    return `INSERT INTO ${q(t.target)} (${t.columns.map(q).join(', ')}) VALUES ${valueTuples('mysql', count, t.columns.length)} ON DUPLICATE KEY UPDATE ${updates.join(', ')}`;
  },
  upsertRejects: (t, count) =>
    `INSERT INTO ${q(t)} (name, fingerprint, record_key, reason, raw, first_seen_ms, last_seen_ms) VALUES ${valueTuples('mysql', count, 7)}
     ON DUPLICATE KEY UPDATE reason = VALUES(reason), last_seen_ms = VALUES(last_seen_ms), seen = seen + 1`,
};
