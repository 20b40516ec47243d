/**
 * MySQL / MariaDB (InnoDB): the relay's statements, and what it does its own way there. The pool is the
 * SQL layer's (one connection per transaction); the publisher's election is `GET_LOCK()` (named after the
 * database) held on a connection of its own — released by the server the moment that connection ends.
 */
import type { Connection } from 'mysql2/promise';
import { loadMysql } from '../../sql/drivers.js';
import { mysqlConnectionOptions } from '../../sql/mysql/connect.js';
import type { MysqlUrl } from '../../sql/url.js';
import { RelayDatabaseError } from '../errors.js';
import { relaySql, type PublisherLock, type PublisherLockContext, type RelayDialect } from './dialect.js';

// Keys and node ids are VARBINARY: compared byte for byte. A text column would use the connection's
// collation — case-insensitive and PAD SPACE by default — and merge the versions of "K", "k" and "k ".
const DDL = [
  `CREATE TABLE IF NOT EXISTS relay_outbox (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    target VARCHAR(64) NOT NULL,
    part INT NOT NULL,
    body LONGTEXT NOT NULL,
    changes INT NOT NULL DEFAULT 1,
    created_at_ms BIGINT NOT NULL
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS relay_inbox (
    id CHAR(26) NOT NULL PRIMARY KEY,
    origin VARBINARY(64) NOT NULL,
    k VARBINARY(512) NOT NULL,
    seq BIGINT NOT NULL,
    status VARCHAR(16) NOT NULL,
    at_ms BIGINT NOT NULL,
    INDEX relay_inbox_at (at_ms)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS relay_versions (
    origin VARBINARY(64) NOT NULL,
    k VARBINARY(512) NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (origin, k)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS relay_seq (
    k VARBINARY(512) NOT NULL PRIMARY KEY,
    seq BIGINT NOT NULL
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS relay_held (
    origin VARBINARY(64) NOT NULL,
    k VARBINARY(512) NOT NULL,
    seq BIGINT NOT NULL,
    body LONGTEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (origin, k, seq)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS relay_parked (
    id CHAR(26) NOT NULL PRIMARY KEY,
    origin VARBINARY(64) NOT NULL,
    k VARBINARY(512) NOT NULL,
    seq BIGINT NOT NULL,
    statement VARCHAR(64) NOT NULL,
    reason TEXT NOT NULL,
    body LONGTEXT NOT NULL,
    at_ms BIGINT NOT NULL
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
];


export const mysqlRelaySql = relaySql({
  kind: 'mysql',
  ddl: DDL,
  outboxHasChanges: "SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'relay_outbox' AND column_name = 'changes'",
  upsertSeq: 'ON DUPLICATE KEY UPDATE seq = VALUES(seq)',
  purgeInbox: "DELETE FROM relay_inbox WHERE at_ms < ? AND status <> 'held' LIMIT ?",
});

export function mysqlRelay(): RelayDialect<MysqlUrl> {
  return {
    sql: mysqlRelaySql,

    async takeSeqs(tx, counts) {
      const keys = [...counts.keys()];
      // The upsert locks the keys' rows until commit (serialising concurrent emits of a key); the SELECT then
      // reads this transaction's own writes.
      await tx.query(`INSERT INTO relay_seq (k, seq) VALUES ${keys.map(() => '(?, ?)').join(', ')} ON DUPLICATE KEY UPDATE seq = seq + VALUES(seq)`, [...counts].flat());
      const { rows } = await tx.query(`SELECT k, seq FROM relay_seq WHERE k IN (${keys.map(() => '?').join(', ')})`, keys);
      return new Map(rows.map((row) => [String(row.k), Number(row.seq)]));
    },

    tryPublisherLock,
  };
}

async function tryPublisherLock({ url, db, connectTimeoutMs }: PublisherLockContext<MysqlUrl>): Promise<PublisherLock | undefined> {
  let connection: Connection;
  try {
    const mysql = await loadMysql();
    connection = await mysql.createConnection({ ...(await mysqlConnectionOptions(url, connectTimeoutMs)), enableKeepAlive: true });
  } catch (error) {
    throw db.wrap(error, 'publisher lock');
  }
  const lost = new AbortController();
  connection.on('error', (error: Error) => lost.abort(db.wrap(error, 'publisher lock connection')));
  connection.on('end', () => lost.abort(new RelayDatabaseError(`${db.label}: publisher lock connection ended`, true)));
  try {
    // GET_LOCK names are server-wide: the database's name (hashed, as names are limited to 64 characters)
    // keeps the publishers of two databases on one server from shutting each other out.
    const [rows] = await connection.query("SELECT GET_LOCK(CONCAT('baton.relay.', SHA1(DATABASE())), 0) AS got");
    if (Number((rows as { got: unknown }[])[0]?.got) !== 1) {
      connection.destroy();
      return undefined;
    }
  } catch (error) {
    connection.destroy();
    throw db.wrap(error, 'publisher lock');
  }
  return {
    signal: lost.signal,
    // Closing the connection releases GET_LOCK.
    release: async () => {
      lost.abort(new RelayDatabaseError(`${db.label}: publisher lock released`, false));
      connection.destroy();
    },
  };
}
