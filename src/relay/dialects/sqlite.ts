/**
 * SQLite: the relay's statements, and what it does its own way there. The handle is the SQL layer's: WAL,
 * `synchronous = FULL` (a committed batch survives power loss), every statement through one queue so the
 * awaits inside a transaction never let another caller's statement into it, and `BEGIN IMMEDIATE`, which
 * takes the database's write lock at once, serialising writers across processes (the busy timeout bounds
 * the wait).
 *
 * The publisher's election is a lease row (`relay_publisher`) naming the holder process (host, pid,
 * start time): another process takes it over when the holder is provably gone (same host, pid free or
 * reused — SQLite files are local to one host) or has not renewed it for 10 s; the holder renews it every
 * second and learns it lost the lease when its renewal matches no row.
 *
 * Non-guarantees: better-sqlite3 is synchronous; a statement waiting for another process's write lock
 * blocks the event loop for up to the busy timeout.
 */
import { randomId } from '../../core/ids.js';
import { currentProcessIdentity, processState, type ProcessIdentity } from '../../core/process-identity.js';
import type { SqliteUrl } from '../../sql/url.js';
import { RelayDatabaseError } from '../errors.js';
import { relaySql, type PublisherLock, type PublisherLockContext, type RelayDialect } from './dialect.js';

const DDL = [
  `CREATE TABLE IF NOT EXISTS relay_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    part INTEGER NOT NULL,
    body TEXT NOT NULL,
    changes INTEGER NOT NULL DEFAULT 1,
    created_at_ms INTEGER NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS relay_inbox (
    id TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    at_ms INTEGER NOT NULL
  )`,
  'CREATE INDEX IF NOT EXISTS relay_inbox_at ON relay_inbox (at_ms)',
  `CREATE TABLE IF NOT EXISTS relay_versions (
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (origin, k)
  )`,
  `CREATE TABLE IF NOT EXISTS relay_seq (
    k TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS relay_held (
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (origin, k, seq)
  )`,
  `CREATE TABLE IF NOT EXISTS relay_parked (
    id TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq INTEGER NOT NULL,
    statement TEXT NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL,
    at_ms INTEGER NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS relay_publisher (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    renewed_at_ms INTEGER NOT NULL
  )`,
];

export const sqliteRelaySql = relaySql({
  kind: 'sqlite',
  ddl: DDL,
  outboxHasChanges: "SELECT 1 FROM pragma_table_info('relay_outbox') WHERE name = 'changes'",
  upsertSeq: 'ON CONFLICT (origin, k) DO UPDATE SET seq = excluded.seq',
  purgeInbox: "DELETE FROM relay_inbox WHERE id IN (SELECT id FROM relay_inbox WHERE at_ms < ? AND status <> 'held' LIMIT ?)",
});

const LEASE_RENEW_MS = 1000;
const LEASE_EXPIRES_MS = 10_000;

export function sqliteRelay(): RelayDialect<SqliteUrl> {
  /** Tells two handles of one process apart in the lease row. */
  const instance = randomId();
  return {
    sql: sqliteRelaySql,

    async takeSeqs(tx, counts) {
      // BEGIN IMMEDIATE already holds the write lock: nobody else can take these keys' numbers meanwhile.
      const tuples = [...counts.keys()].map(() => '(?, ?)').join(', ');
      const { rows } = await tx.query(
        `INSERT INTO relay_seq (k, seq) VALUES ${tuples} ON CONFLICT (k) DO UPDATE SET seq = relay_seq.seq + excluded.seq RETURNING k, seq`,
        [...counts].flat(),
      );
      return new Map(rows.map((row) => [String(row.k), Number(row.seq)]));
    },

    tryPublisherLock: (context) => tryPublisherLease(context, instance),
  };
}

async function tryPublisherLease({ db, clock }: PublisherLockContext<SqliteUrl>, instance: string): Promise<PublisherLock | undefined> {
  const me = JSON.stringify({ ...currentProcessIdentity(), instance });
  const taken = await db.transaction(async (tx) => {
    const [row] = (await tx.query('SELECT holder, renewed_at_ms FROM relay_publisher WHERE id = 1')).rows;
    if (row) {
      const holder = String(row.holder);
      const fresh = clock.now() - Number(row.renewed_at_ms) < LEASE_EXPIRES_MS;
      if (holder !== me && fresh && processState(JSON.parse(holder) as ProcessIdentity) !== 'gone') return false;
    }
    await tx.query('INSERT INTO relay_publisher (id, holder, renewed_at_ms) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, renewed_at_ms = excluded.renewed_at_ms', [me, Math.floor(clock.now())]);
    return true;
  });
  if (!taken) return undefined;
  const lost = new AbortController();
  let cancel = (): void => undefined;
  const renew = () => {
    cancel = clock.setTimer(LEASE_RENEW_MS, () => {
      db.query('UPDATE relay_publisher SET renewed_at_ms = ? WHERE id = 1 AND holder = ?', [Math.floor(clock.now()), me]).then(
        ({ affected }) => {
          if (affected === 0) lost.abort(new RelayDatabaseError(`${db.label}: publisher lease taken over`, true));
          else if (!lost.signal.aborted) renew();
        },
        (error: unknown) => lost.abort(db.wrap(error, 'publisher lease renewal')),
      );
    });
  };
  renew();
  return {
    signal: lost.signal,
    release: async () => {
      cancel();
      lost.abort(new RelayDatabaseError(`${db.label}: publisher lease released`, false));
      await db.query('DELETE FROM relay_publisher WHERE id = 1 AND holder = ?', [me]).catch(() => undefined);
    },
  };
}
