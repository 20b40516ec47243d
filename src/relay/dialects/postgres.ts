/**
 * PostgreSQL: the relay's statements, and what it does its own way on PostgreSQL.
 * - Its pool (the SQL layer's, one connection per transaction) runs in pg's pipeline mode, with statements
 *   prepared by name and the socket corked for a tick, so a batch costs a few round trips and one write.
 * - The publisher's election is a session-level advisory lock held on a connection of its own — released
 *   by the server the moment that connection ends, so a crashed publisher's successor takes over at once.
 *   The same connection LISTENs for the NOTIFY that applications' transactions send when they wrote
 *   outbox rows, so the publisher wakes at their commit instead of at its next poll.
 */
import type { Client } from 'pg';
import { loadPg } from '../../sql/drivers.js';
import { pgClientConfig } from '../../sql/postgres/connect.js';
import type { PgQueryClient, PgRun } from '../../sql/postgres/tuning.js';
import type { PostgresUrl } from '../../sql/url.js';
import { RelayDatabaseError } from '../errors.js';
import { columns, relaySql, type PublisherLock, type PublisherLockContext, type RelayDialect, type RelayTx } from './dialect.js';

const DDL = [
  `CREATE TABLE IF NOT EXISTS relay_outbox (
    id BIGSERIAL PRIMARY KEY,
    target TEXT NOT NULL,
    part INTEGER NOT NULL,
    body TEXT NOT NULL,
    changes INTEGER NOT NULL DEFAULT 1,
    created_at_ms BIGINT NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS relay_inbox (
    id CHAR(26) PRIMARY KEY,
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq BIGINT NOT NULL,
    status TEXT NOT NULL,
    at_ms BIGINT NOT NULL
  )`,
  'CREATE INDEX IF NOT EXISTS relay_inbox_at ON relay_inbox (at_ms)',
  `CREATE TABLE IF NOT EXISTS relay_versions (
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (origin, k)
  )`,
  `CREATE TABLE IF NOT EXISTS relay_seq (
    k TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS relay_held (
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (origin, k, seq)
  )`,
  `CREATE TABLE IF NOT EXISTS relay_parked (
    id CHAR(26) PRIMARY KEY,
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq BIGINT NOT NULL,
    statement TEXT NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL,
    at_ms BIGINT NOT NULL
  )`,
];

/** The NOTIFY channel that wakes the publisher when an application committed outbox rows. */
const OUTBOX_CHANNEL = 'baton_relay_outbox';

/** The advisory lock key (two int4) of the relay publisher: one per database. */
const PUBLISHER_LOCK = [0x62746e, 0x72656c] as const;

export const postgresRelaySql = relaySql({
  kind: 'postgres',
  ddl: DDL,
  outboxHasChanges: "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'relay_outbox' AND column_name = 'changes'",
  // A batch carries each (origin, k) once (its last seq), so one row is never updated twice by one statement.
  upsertSeq: 'ON CONFLICT (origin, k) DO UPDATE SET seq = EXCLUDED.seq',
  // No DELETE … LIMIT in PostgreSQL: the bounded sub-select keeps each purge short.
  purgeInbox: "DELETE FROM relay_inbox WHERE id IN (SELECT id FROM relay_inbox WHERE at_ms < $1 AND status <> 'held' LIMIT $2)",
  // One array per column: the text is the same for any number of rows, so it is parsed once per connection
  // (a prepared statement) instead of once per batch with hundreds of placeholders. Not for outbox rows:
  // they are few per batch, and their bodies would be escaped into array literals character by character.
  rows: {
    deleteOutbox: (rows) => ({ sql: 'DELETE FROM relay_outbox WHERE id = ANY($1::bigint[])', values: columns(rows, 1) }),
    selectInbox: (rows) => ({ sql: 'SELECT id FROM relay_inbox WHERE id = ANY($1::bpchar[])', values: columns(rows, 1) }),
    insertInbox: (rows) => ({
      sql: 'INSERT INTO relay_inbox (id, origin, k, seq, status, at_ms) SELECT * FROM unnest($1::bpchar[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[])',
      values: columns(rows, 6),
    }),
    selectVersions: (rows) => ({
      sql: 'SELECT v.origin, v.k, v.seq FROM relay_versions v JOIN unnest($1::text[], $2::text[]) AS q(origin, k) ON v.origin = q.origin AND v.k = q.k',
      values: columns(rows, 2),
    }),
    upsertVersions: (rows) => ({
      sql: 'INSERT INTO relay_versions (origin, k, seq) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) ON CONFLICT (origin, k) DO UPDATE SET seq = EXCLUDED.seq',
      values: columns(rows, 3),
    }),
    selectHeld: (rows) => ({
      sql: 'SELECT h.origin, h.k, h.seq, h.body FROM relay_held h JOIN unnest($1::text[], $2::text[]) AS q(origin, k) ON h.origin = q.origin AND h.k = q.k ORDER BY h.seq',
      values: columns(rows, 2),
    }),
  },
});

/** Distinct statement texts prepared per database (per connection on the server). */
const MAX_PREPARED = 256;

export function postgresRelay(): RelayDialect<PostgresUrl> {
  return {
    sql: postgresRelaySql,
    tuning: {
      postgres: {
        // Prepared statements keep their parse but are planned at each run with the values at hand: the
        // generic plan of a prepared `id = ANY($1)` made while relay_inbox was empty (a new node) kept
        // scanning it whole as it grew — 5× the CPU of the whole relay chain within 10 s at 5,000 changes/s.
        serverSettings: { plan_cache_mode: 'force_custom_plan' },
        // Queries issued together are written at once and answered in order: a relay batch's statements
        // cost a few round trips instead of one each. Nothing here keeps a portal open.
        pipeline: true,
        run: preparedAndCorked(),
      },
    },

    async takeSeqs(tx, counts) {
      // One atomic statement (rows taken in the order given); the row locks it takes serialise concurrent
      // emits of these keys until commit.
      const { rows } = await tx.query(
        'INSERT INTO relay_seq (k, seq) SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT (k) DO UPDATE SET seq = relay_seq.seq + EXCLUDED.seq RETURNING k, seq',
        [[...counts.keys()], [...counts.values()]],
      );
      return new Map(rows.map((row) => [String(row.k), Number(row.seq)]));
    },

    async notifyOutboxWritten(tx: RelayTx) {
      // Delivered at commit, and not at all on rollback; several in one transaction are folded into one.
      await tx.query(`SELECT pg_notify('${OUTBOX_CHANNEL}', '')`);
    },

    tryPublisherLock,
  };
}

async function tryPublisherLock({ url, db, connectTimeoutMs }: PublisherLockContext<PostgresUrl>): Promise<PublisherLock | undefined> {
  const pg = await loadPg();
  const client: Client = new pg.Client({ ...(await pgClientConfig(url, connectTimeoutMs)), keepAlive: true });
  const lost = new AbortController();
  // Attached before connect(): an unhandled 'error' event would crash the process.
  client.on('error', (error) => lost.abort(db.wrap(error, 'publisher lock connection')));
  client.on('end', () => lost.abort(new RelayDatabaseError(`${db.label}: publisher lock connection ended`, true)));
  try {
    await client.connect();
    const { rows } = await client.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS got', [...PUBLISHER_LOCK]);
    if (rows[0]?.got !== true) {
      await client.end().catch(() => undefined);
      return undefined;
    }
    await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
  } catch (error) {
    await client.end().catch(() => undefined); // already failing: the connect error is what we report
    throw db.wrap(error, 'publisher lock');
  }
  return {
    signal: lost.signal,
    onOutboxWritten: (listener) => {
      client.on('notification', (message) => {
        if (message.channel === OUTBOX_CHANNEL) listener();
      });
    },
    // Ending the session releases the advisory lock.
    release: async () => {
      lost.abort(new RelayDatabaseError(`${db.label}: publisher lock released`, false));
      await client.end().catch(() => undefined);
    },
  };
}

/**
 * Sends each statement with values under a prepared-statement name (the server parses it once per
 * connection instead of at every execution; past {@link MAX_PREPARED} texts, statements go unnamed), on a
 * socket corked until the microtasks queued now have run: the statements a batch sends together
 * (pipelined) leave in one write instead of one system call each — on loopback, the writes were the
 * relay's largest cost. Uses pg's socket (`connection.stream`); without one it does not cork.
 */
function preparedAndCorked(): PgRun {
  const names = new Map<string, string>();
  const corked = new WeakSet<object>();
  const nameOf = (sql: string): string | undefined => {
    let name = names.get(sql);
    if (name === undefined && names.size < MAX_PREPARED) names.set(sql, (name = `baton_relay_${names.size}`));
    return name;
  };
  const cork = (client: PgQueryClient): void => {
    const stream = (client as unknown as { connection?: { stream?: { cork?: () => void; uncork?: () => void } } }).connection?.stream;
    if (typeof stream?.cork !== 'function' || typeof stream.uncork !== 'function' || corked.has(stream)) return;
    stream.cork();
    corked.add(stream);
    // After the microtasks queued now: a batch's loop issues its queries in one run of the microtask queue.
    process.nextTick(() => {
      corked.delete(stream);
      stream.uncork?.();
    });
  };
  return (client, sql, values) => {
    cork(client);
    const name = values.length > 0 ? nameOf(sql) : undefined;
    return name === undefined ? client.query(sql, values) : client.query({ name, text: sql, values });
  };
}
