/**
 * The SQL of the PostgreSQL store: one function per statement, each primitive ONE statement (CTEs) run in
 * autocommit under READ COMMITTED. Never a read then a write from the client: every decision is taken by
 * the server, on rows it has locked or on a predicate re-checked on the newest row version.
 *
 * Two facts of READ COMMITTED that the comments below rely on:
 * - UPDATE, DELETE, `SELECT … FOR KEY SHARE/SHARE` and `INSERT … ON CONFLICT DO UPDATE` lock the row they
 *   act on and, when a concurrent transaction changed it, wait for it and re-check their WHERE clause on
 *   the newest version (EvalPlanQual). Decisions on those rows are therefore current.
 * - A plain subquery reads the statement's snapshot, which may miss what committed since the statement
 *   began. Where a decision rests on such a read (the holder's session in tryAcquire), the comment says why
 *   a stale read can only make the decision more cautious.
 *
 * Parameters are named (`:cluster`, `:key`, …) and compiled to `$n` by {@link compile}. Notifications (`pg_notify`) are part of the statement, so
 * they are sent exactly when the change commits and never for a change that rolled back. A SELECT CTE
 * runs only when referenced, so every `notified` CTE is referenced by the final SELECT.
 */

import { createHash } from 'node:crypto';

/** Store wall time as ms since the epoch, a float8 so the driver returns a number. */
const epochMs = (expression: string): string => `(extract(epoch FROM ${expression}) * 1000)::float8`;

/**
 * True when the session's connection provably ended, i.e. its holder crashed (see the crash-detection
 * safety argument in postgres-store.ts). Every clause errs towards "alive":
 * - no binding (crashDetection=false) → alive;
 * - bound before the server last started → the restart ended every connection, the dead and the living
 *   alike, so it proves nothing: TTL only;
 * - a backend with that pid exists whose start time matches, or is hidden from us (another role without
 *   pg_read_all_stats sees NULL) → alive. Pid reuse cannot fool the check: the start time differs.
 */
function connectionGone(s: string): string {
  return `(${s}.backend_pid IS NOT NULL AND ${s}.backend_start IS NOT NULL
      AND ${s}.backend_start >= pg_postmaster_start_time()
      AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                      WHERE a.pid = ${s}.backend_pid AND (a.backend_start IS NULL OR a.backend_start = ${s}.backend_start)))`;
}

/** A live session: not expired at `at` (server time) and its connection not provably gone. */
function live(s: string, at: string): string {
  return `(${s}.expires_at > ${at} AND NOT ${connectionGone(s)})`;
}

/** The backend of THIS statement's connection: the one a session opened or renewed here is bound to. */
const MY_BACKEND_START = `(SELECT a.backend_start FROM pg_stat_activity a WHERE a.pid = pg_backend_pid())`;

/** `$n` as a notification payload: `scope` or `scope:key` (keys too long for NOTIFY's 8000 bytes are left out). */
function payload(scope: string, keyExpression?: string): string {
  if (!keyExpression) return `'${scope}'`;
  return `CASE WHEN octet_length(${keyExpression}) <= 4000 THEN '${scope}:' || ${keyExpression} ELSE '${scope}' END`;
}

/**
 * The payload of a key taken: `held:` and a JSON array [key, session, token, acquired at ms], so that a
 * watcher caching holders applies it without reading the key back (parseChange in postgres-store.ts).
 */
function heldPayload(key: string, session: string, token: string, acquiredAt: string): string {
  return `CASE WHEN octet_length(${key}) <= 4000
            THEN 'held:' || json_build_array(${key}, ${session}, ${token}::text, ${epochMs(acquiredAt)})::text
            ELSE 'owners' END`;
}

/**
 * The payloads of sessions ended with keys: `ended:<session id>` each (their keys, and only those, are free).
 * Sent before the statement's `sessions` payload (a transaction's notifications arrive in order): a
 * standby next in line claims on `ended` (Coordinator), before the re-read that `sessions` asks for
 * queues on the same connection.
 */
function endedPayloads(owners: string): string {
  return `SELECT pg_notify(:channel, 'ended:' || g.session_id) FROM (SELECT DISTINCT session_id FROM ${owners}) g`;
}

/**
 * Deletes the cluster's dead sessions (expired, or their connection gone) and their keys, as CTEs named
 * `dead` and `dead_owners`. Expiry is judged at `now()` — the transaction start, which precedes the
 * snapshot — and DELETE re-checks each row on its newest version anyway, so a session renewed
 * concurrently is never deleted.
 */
function deleteDeadSessions(s: string, which: 'all' | 'expired' = 'all'): string {
  // Expired ones only: a range of the expiry index, which reads no row while nothing expired.
  const dead = which === 'all' ? `NOT ${live('d', 'now()')}` : `d.expires_at <= now()`;
  return `dead AS (
      DELETE FROM ${s}.sessions d WHERE d.cluster = :cluster AND ${dead}
      RETURNING d.id
    ),
    dead_owners AS (
      -- Re-checked on the newest row: a key taken over meanwhile has another session_id and stays.
      DELETE FROM ${s}.owners o USING dead WHERE o.cluster = :cluster AND o.session_id = dead.id
      RETURNING o.key, o.session_id
    )`;
}

/** A reap round (deleteDeadSessions), notifying; `total`: the cluster's sessions, counted by the full round only. */
function reapStatement(s: string, which: 'all' | 'expired'): string {
  const total = which === 'all' ? `, (SELECT count(*) FROM ${s}.sessions WHERE cluster = :cluster)::int AS total` : '';
  return `
      WITH ${COMMIT_MODE},
      ${deleteDeadSessions(s, which)},
      notified AS (
        ${endedPayloads('dead_owners')}
        UNION ALL SELECT pg_notify(:channel, ${payload('sessions')}) WHERE EXISTS (SELECT 1 FROM dead)
      )
      SELECT (SELECT count(*) FROM dead)::int AS sessions, (SELECT count(*) FROM notified)::int AS notified,
             (SELECT count(mode) FROM commit_mode)::int AS async_commit${total}`;
}

/**
 * A CTE named `commit_mode` that makes THIS transaction commit without waiting for its WAL flush when
 * `:asyncCommit` is true (`synchronous_commit` is read at commit time, so setting it inside the statement
 * is enough), and leaves the session's setting otherwise. Used by the statements that only give up or
 * take ownership — tryAcquire, release, closeSession and the reaper's — whose NOTIFY then goes out without
 * waiting for a WAL flush (it is sent on commit): what a server crash may lose, and why fencing still
 * holds, is argued in postgres-store.ts ("Durability of ownership"). Referenced by the final SELECT, or it
 * would not run.
 */
const COMMIT_MODE = `commit_mode AS MATERIALIZED (
      SELECT CASE WHEN :asyncCommit::boolean THEN set_config('synchronous_commit', 'off', true) END AS mode
    )`;

export type Statements = ReturnType<typeof postgresStatements>;

/** Every statement of the store for one schema (already quoted). */
/** The requesting session, live, locked against its deletion for the statement: no row when it is not live. */
function liveRequester(s: string): string {
  return `me AS MATERIALIZED (
        SELECT s.id FROM ${s}.sessions s
        WHERE s.cluster = :cluster AND s.id = :session AND ${live('s', 'clock_timestamp()')}
        FOR KEY SHARE
      )`;
}

/** The conflict clause of an owner insert (alias `o`): takes the key over only from a dead holder. */
function takeOverIfDead(s: string): string {
  return `ON CONFLICT (cluster, key) DO UPDATE
          -- A new token, drawn now that the row is locked: excluded.token was drawn before a wait for
          -- that lock, and a holder that took the key meanwhile (and died) may have drawn a greater one.
          SET session_id = excluded.session_id, token = nextval('${s}.token_seq'), acquired_at = excluded.acquired_at
          WHERE o.session_id <> excluded.session_id
            AND NOT EXISTS (SELECT 1 FROM ${s}.sessions h
                            WHERE h.cluster = o.cluster AND h.id = o.session_id AND ${live('h', 'now()')})
            AND (o.acquired_at < now()
                 OR EXISTS (SELECT 1 FROM ${s}.sessions h WHERE h.cluster = o.cluster AND h.id = o.session_id))`;
}

export function postgresStatements(s: string) {
  return {
    time: `SELECT ${epochMs('clock_timestamp()')} AS now`,

    /**
     * `:bind` binds the session to this connection (crash detection). Sweeps the cluster's dead sessions
     * on the way, so no sweeper is needed for correctness.
     */
    openSession: `
      WITH ${deleteDeadSessions(s)},
      inserted AS (
        INSERT INTO ${s}.sessions (cluster, id, info, ttl_ms, opened_at, renewed_at, expires_at, backend_pid, backend_start)
        VALUES (:cluster, :id, :info, :ttl::integer, clock_timestamp(), clock_timestamp(),
                clock_timestamp() + :ttl::integer * interval '1 millisecond',
                CASE WHEN :bind::boolean THEN pg_backend_pid() END, CASE WHEN :bind::boolean THEN ${MY_BACKEND_START} END)
        RETURNING id
      ),
      notified AS (
        SELECT pg_notify(:channel, ${payload('sessions')}) FROM inserted
        UNION ALL ${endedPayloads('dead_owners')}
      )
      SELECT (SELECT count(*) FROM notified)::int AS notified`,

    /**
     * UPDATE re-checks liveness on the newest row at clock_timestamp(): an expired session, or one whose connection died, is never revived — once dead,
     * always dead, because another node may already have taken its keys. Re-binding moves crash detection
     * to the connection that renews (a handle that reconnected after a server restart, for one).
     */
    renewSession: `
      UPDATE ${s}.sessions s
      SET renewed_at = clock_timestamp(), expires_at = clock_timestamp() + s.ttl_ms * interval '1 millisecond',
          backend_pid = CASE WHEN COALESCE(:bind::boolean, false) THEN pg_backend_pid() END,
          backend_start = CASE WHEN COALESCE(:bind::boolean, false) THEN ${MY_BACKEND_START} END
      WHERE s.cluster = :cluster AND s.id = :id AND ${live('s', 'clock_timestamp()')}
      RETURNING 1 AS renewed`,

    /** A live session's published info (its declared tasks changed); a dead one stays dead. */
    updateSessionInfo: `
      WITH updated AS (
        UPDATE ${s}.sessions s SET info = :info
        WHERE s.cluster = :cluster AND s.id = :id AND ${live('s', 'clock_timestamp()')}
        RETURNING s.id
      ),
      notified AS (SELECT pg_notify(:channel, ${payload('sessions')}) FROM updated)
      SELECT (SELECT count(*) FROM updated)::int AS updated, (SELECT count(*) FROM notified)::int AS notified`,

    /** Keys and session go together, in one statement. */
    closeSession: `
      WITH ${COMMIT_MODE},
      gone_owners AS (
        DELETE FROM ${s}.owners WHERE cluster = :cluster AND session_id = :id RETURNING key, session_id
      ),
      gone AS (
        DELETE FROM ${s}.sessions WHERE cluster = :cluster AND id = :id RETURNING id
      ),
      notified AS (
        ${endedPayloads('gone_owners')}
        UNION ALL SELECT pg_notify(:channel, ${payload('sessions')}) FROM gone
      )
      SELECT (SELECT count(*) FROM notified)::int AS notified, (SELECT count(mode) FROM commit_mode)::int AS async_commit`,

    /**
     * The background reaper: turns crashes and expiries into notifications. Reads every session of the
     * cluster (a crash is seen in pg_stat_activity, not in the row), and says how many there are.
     */
    reap: reapStatement(s, 'all'),

    /** The reaper's frequent round: expiries only, from the expiry index (no row read while none expired). */
    reapExpired: reapStatement(s, 'expired'),

    /**
     * The backend the crash watch waits for (backend-watch.ts): the next bound session's after `:pid` (this
     * handle's own) in pid order, wrapping around. Sessions bound before the server started have no live
     * backend to wait for.
     */
    ringNext: `
      SELECT pid FROM (
        (SELECT s.backend_pid AS pid, 0 AS wrapped FROM ${s}.sessions s
         WHERE s.cluster = :cluster AND s.backend_pid > :pid::integer AND s.backend_start >= pg_postmaster_start_time()
         ORDER BY s.backend_pid LIMIT 1)
        UNION ALL
        (SELECT s.backend_pid, 1 FROM ${s}.sessions s
         WHERE s.cluster = :cluster AND s.backend_pid < :pid::integer AND s.backend_start >= pg_postmaster_start_time()
         ORDER BY s.backend_pid LIMIT 1)
      ) ring ORDER BY wrapped LIMIT 1`,

    // UNION also removes duplicates; for operators (`baton status` on an unknown cluster), not for a loop.
    listClusters: `
      SELECT cluster FROM ${s}.sessions UNION SELECT cluster FROM ${s}.owners UNION SELECT cluster FROM ${s}.records`,
    listSessions: `
      SELECT s.id, s.info, s.ttl_ms,
             ${epochMs('clock_timestamp() - s.opened_at')} AS age_ms,
             ${epochMs('s.expires_at - clock_timestamp()')} AS expires_in_ms
      FROM ${s}.sessions s
      WHERE s.cluster = :cluster AND ${live('s', 'clock_timestamp()')}
      ORDER BY s.id`,

    /**
     * Takes the key when it is free or its holder is dead.
     *
     * - `me` locks the acquirer's session row (FOR KEY SHARE, which does not block renewals): a concurrent
     *   closeSession (DELETE) waits for us, or we see it gone — no key is left to a closed session.
     * - `taken`: the unique (cluster, key) index makes concurrent inserts conflict; ON CONFLICT DO UPDATE
     *   locks the existing owner row, so the conditional takeover is atomic: of N racers, one inserts and
     *   the others find a live holder. Its WHERE sees the newest owner row, but reads the holder's session
     *   from the snapshot, so it is written to be cautious:
     *     · expiry is judged at now() (transaction start, before the snapshot): a session renewed after our
     *       snapshot was alive at now(), so its stale expires_at is > now() and we do not take over;
     *     · a holder session we cannot see at all is dead only if the owner row predates our transaction
     *       (its session then committed before our snapshot, so "invisible" means deleted); a newer owner
     *       row may belong to a session committed after our snapshot, and is left alone.
     *   nextval() runs for every attempt, conflicting or not: tokens have gaps, never repeats.
     * - The final SELECT reads the owner from the snapshot. When the insert conflicted with a row committed
     *   after our snapshot, it sees no owner at all: the caller repeats the statement.
     */
    tryAcquire: `
      WITH ${COMMIT_MODE},
      ${liveRequester(s)},
      taken AS (
        INSERT INTO ${s}.owners AS o (cluster, key, session_id, token, acquired_at)
        SELECT :cluster, :key, me.id, nextval('${s}.token_seq'), clock_timestamp() FROM me
        ${takeOverIfDead(s)}
        RETURNING o.token, o.session_id, o.acquired_at
      ),
      notified AS (
        SELECT pg_notify(:channel, ${heldPayload(':key::text', 'taken.session_id', 'taken.token', 'taken.acquired_at')}) FROM taken
      )
      SELECT (SELECT count(*) FROM me)::int AS live,
             (SELECT token FROM taken) AS taken_token,
             (SELECT count(*) FROM notified)::int AS notified,
             (SELECT count(mode) FROM commit_mode)::int AS async_commit,
             h.session_id, h.token, h.acquired_at
      FROM (SELECT 1) AS one
      LEFT JOIN (SELECT o.session_id, o.token, ${epochMs('o.acquired_at')} AS acquired_at
                 FROM ${s}.owners o WHERE o.cluster = :cluster AND o.key = :key) AS h ON true`,

    /**
     * tryAcquire for the distinct keys of `:keys`, in one statement: the same `me`, takeover condition and
     * notification per key taken. Rows are inserted in key order, so two batches that overlap lock their
     * common owner rows in the same order (no deadlock). One row per key, in the order of `:keys`; a key
     * with neither `taken_token` nor a holder in the snapshot raced a newer insert: the caller repeats it.
     */
    tryAcquireMany: `
      WITH ${COMMIT_MODE},
      ${liveRequester(s)},
      wanted AS MATERIALIZED (SELECT w.key, w.ord FROM unnest(:keys::text[]) WITH ORDINALITY AS w(key, ord)),
      taken AS (
        INSERT INTO ${s}.owners AS o (cluster, key, session_id, token, acquired_at)
        SELECT :cluster, w.key, me.id, nextval('${s}.token_seq'), clock_timestamp() FROM wanted w, me ORDER BY w.key
        ${takeOverIfDead(s)}
        RETURNING o.key, o.token, o.session_id, o.acquired_at
      ),
      notified AS (
        SELECT pg_notify(:channel, ${heldPayload('taken.key', 'taken.session_id', 'taken.token', 'taken.acquired_at')}) FROM taken
      )
      SELECT (SELECT count(*) FROM me)::int AS live,
             (SELECT count(*) FROM notified)::int AS notified,
             (SELECT count(mode) FROM commit_mode)::int AS async_commit,
             t.token AS taken_token, h.session_id, h.token, h.acquired_at
      FROM wanted w
      LEFT JOIN taken t ON t.key = w.key
      LEFT JOIN (SELECT o.key, o.session_id, o.token, ${epochMs('o.acquired_at')} AS acquired_at
                 FROM ${s}.owners o WHERE o.cluster = :cluster AND o.key = ANY(:keys::text[])) AS h ON h.key = w.key
      ORDER BY w.ord`,

    /** release for each (`:keys[i]`, `:tokens[i]`) in one statement; one row per key, in order. */
    releaseMany: `
      WITH ${COMMIT_MODE},
      wanted AS MATERIALIZED (SELECT w.key, w.token, w.ord FROM unnest(:keys::text[], :tokens::bigint[]) WITH ORDINALITY AS w(key, token, ord)),
      gone AS (
        DELETE FROM ${s}.owners o USING wanted w WHERE o.cluster = :cluster AND o.key = w.key AND o.token = w.token RETURNING o.key
      ),
      notified AS (
        SELECT pg_notify(:channel, ${payload('freed', 'gone.key')}) FROM gone
      )
      SELECT (g.key IS NOT NULL) AS released, (SELECT count(*) FROM notified)::int AS notified,
             (SELECT count(mode) FROM commit_mode)::int AS async_commit
      FROM wanted w LEFT JOIN gone g ON g.key = w.key
      ORDER BY w.ord`,

    /** DELETE re-checks the token on the newest row. */
    release: `
      WITH ${COMMIT_MODE},
      gone AS (
        DELETE FROM ${s}.owners WHERE cluster = :cluster AND key = :key AND token = :token::bigint RETURNING key
      ),
      notified AS (
        SELECT pg_notify(:channel, ${payload('freed', 'gone.key')}) FROM gone
      )
      SELECT (SELECT count(*) FROM gone)::int AS released, (SELECT count(*) FROM notified)::int AS notified,
             (SELECT count(mode) FROM commit_mode)::int AS async_commit`,

    /**
     * Moves the token sequence GAP values ahead, with a synchronous commit, before a connection issues any
     * token (see "Durability of ownership" in postgres-store.ts): tokens handed out by acquisitions a crash
     * lost are then never issued again. The advisory lock serialises concurrent bumps, so one bump can never
     * set the sequence below another's; nextval() calls of other connections meanwhile stay below
     * nextval + GAP. setval() gives the transaction an xid, so its commit waits for the WAL flush.
     * On a WAL timeline other than the one recorded in meta (a promoted standby: its copy of meta names the
     * old primary's), it moves FAILOVER_GAP ahead instead and records the timeline: tokens the old primary
     * issued but never replicated are not issued again. The timeline is the first 8 hex digits of the
     * current WAL file's name.
     */
    bumpTokens: `
      WITH serialised AS MATERIALIZED (
        SELECT pg_advisory_xact_lock(hashtext('baton.tokens.' || :schema::text)),
               set_config('synchronous_commit', CASE WHEN current_setting('synchronous_commit') IN ('off', 'local')
                                                     THEN 'on' ELSE current_setting('synchronous_commit') END, true)
      ),
      timeline AS MATERIALIZED (
        SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint::text AS id FROM serialised
      ),
      moved AS (
        SELECT NOT EXISTS (SELECT 1 FROM ${s}.meta m WHERE m.name = 'token_timeline' AND m.value = t.id) AS failover FROM timeline t
      ),
      recorded AS (
        INSERT INTO ${s}.meta (name, value) SELECT 'token_timeline', t.id FROM timeline t, moved WHERE moved.failover
        ON CONFLICT (name) DO UPDATE SET value = excluded.value
        RETURNING value
      )
      SELECT setval('${s}.token_seq', nextval('${s}.token_seq') + CASE WHEN moved.failover THEN :failoverGap::bigint ELSE :gap::bigint END)::text AS token,
             moved.failover, (SELECT count(*) FROM recorded)::int AS recorded
      FROM moved`,

    holder: `
      SELECT o.key, o.session_id, o.token, ${epochMs('o.acquired_at')} AS acquired_at
      FROM ${s}.owners o JOIN ${s}.sessions s ON s.cluster = o.cluster AND s.id = o.session_id
      WHERE o.cluster = :cluster AND o.key = :key AND ${live('s', 'clock_timestamp()')}`,

    listHolders: `
      SELECT o.key, o.session_id, o.token, ${epochMs('o.acquired_at')} AS acquired_at
      FROM ${s}.owners o JOIN ${s}.sessions s ON s.cluster = o.cluster AND s.id = o.session_id
      WHERE o.cluster = :cluster AND o.key >= :prefix AND starts_with(o.key, :prefix) AND ${live('s', 'clock_timestamp()')}
      ORDER BY o.key`,

    get: `
      SELECT key, value, version, ${epochMs('updated_at')} AS updated_at
      FROM ${s}.records WHERE cluster = :cluster AND key = :key`,

    /** `:limit` NULL: all. */
    listAsc: `
      SELECT key, value, version, ${epochMs('updated_at')} AS updated_at
      FROM ${s}.records WHERE cluster = :cluster AND key >= :prefix AND starts_with(key, :prefix)
      ORDER BY key LIMIT :limit::integer`,

    listDesc: `
      SELECT key, value, version, ${epochMs('updated_at')} AS updated_at
      FROM ${s}.records WHERE cluster = :cluster AND key >= :prefix AND starts_with(key, :prefix)
      ORDER BY key DESC LIMIT :limit::integer`,

    /** Writes: see {@link writeStatement}. */
    put: (mode: WriteMode, guarded: boolean) => writeStatement(s, mode, guarded),
    delete: (versioned: boolean, guarded: boolean) => deleteStatement(s, versioned, guarded),

    deleteBefore: `
      WITH gone AS (
        DELETE FROM ${s}.records WHERE cluster = :cluster AND key >= :prefix AND key < :before AND starts_with(key, :prefix)
        RETURNING key
      ),
      notified AS (
        SELECT pg_notify(:channel, ${payload('records')}) WHERE EXISTS (SELECT 1 FROM gone)
      )
      SELECT (SELECT count(*) FROM gone)::int AS deleted, (SELECT count(*) FROM notified)::int AS notified`,
  };
}

/** How a put treats an existing record: overwrite, insert only, or compare-and-set on the version. */
export type WriteMode = 'upsert' | 'absent' | 'version';

/**
 * The guard of a fenced write, as a CTE named `guard` that has a row only when `:guardKey` is held
 * with `:guardToken` by a live session. `FOR SHARE OF o` locks that owner row until we commit: a takeover or
 * release (which must lock it exclusively) waits for our write, or we wait for it and re-check the token
 * on the newest row and refuse. So a fenced write is never accepted after a newer token committed.
 * Without a guard the CTE is a single row.
 */
function guardCte(s: string, guarded: boolean): string {
  if (!guarded) return `guard AS MATERIALIZED (SELECT 1 AS ok)`;
  return `guard AS MATERIALIZED (
      SELECT 1 AS ok FROM ${s}.owners o JOIN ${s}.sessions g ON g.cluster = o.cluster AND g.id = o.session_id
      WHERE o.cluster = :cluster AND o.key = :guardKey AND o.token = :guardToken::bigint AND ${live('g', 'clock_timestamp()')}
      FOR SHARE OF o
    )`;
}

/**
 * Answers `guard_ok` (0: fenced) and `version` (NULL: refused).
 * - upsert: ON CONFLICT DO UPDATE locks the row and increments the newest version.
 * - absent: a unique insert — ON CONFLICT DO NOTHING; of concurrent inserters exactly one gets a row back.
 * - version: UPDATE re-checks `version = :version` on the newest row after waiting for concurrent writers: CAS.
 */
function writeStatement(s: string, mode: WriteMode, guarded: boolean): string {
  const write =
    mode === 'version'
      ? `UPDATE ${s}.records r SET value = :value, version = r.version + 1, updated_at = clock_timestamp()
         WHERE r.cluster = :cluster AND r.key = :key AND r.version = :version::integer AND EXISTS (SELECT 1 FROM guard)
         RETURNING r.version`
      : `INSERT INTO ${s}.records AS r (cluster, key, value, version, updated_at)
         SELECT :cluster, :key, :value, 1, clock_timestamp() FROM guard
         ${
           mode === 'absent'
             ? 'ON CONFLICT (cluster, key) DO NOTHING'
             : `ON CONFLICT (cluster, key) DO UPDATE
                SET value = excluded.value, version = r.version + 1, updated_at = excluded.updated_at`
         }
         RETURNING r.version`;
  return `
    WITH ${guardCte(s, guarded)},
    written AS (${write}),
    notified AS (SELECT pg_notify(:channel, ${payload('records', ':key::text')}) FROM written)
    SELECT (SELECT count(*) FROM guard)::int AS guard_ok, (SELECT version FROM written) AS version,
           (SELECT count(*) FROM notified)::int AS notified`;
}

/** DELETE re-checks the version (and the guard's lock) on the newest row: a conditional delete is a CAS too. */
function deleteStatement(s: string, versioned: boolean, guarded: boolean): string {
  return `
    WITH ${guardCte(s, guarded)},
    gone AS (
      DELETE FROM ${s}.records r
      WHERE r.cluster = :cluster AND r.key = :key AND EXISTS (SELECT 1 FROM guard)
        ${versioned ? 'AND r.version = :version::integer' : ''}
      RETURNING r.key
    ),
    notified AS (SELECT pg_notify(:channel, ${payload('records', 'gone.key')}) FROM gone)
    SELECT (SELECT count(*) FROM gone)::int AS deleted, (SELECT count(*) FROM notified)::int AS notified`;
}

/** A statement with its named parameters turned into `$n`, and the names in `$n` order. */
export interface CompiledStatement {
  readonly text: string;
  readonly names: readonly string[];
  /** Name to prepare it under: a hash of the text, so one name always stands for one text. */
  readonly prepared: string;
}

const compiled = new Map<string, CompiledStatement>();

/**
 * Replaces `:name` by `$n` (the same name always gets the same number). `::type` casts are left alone: a
 * colon preceded by a colon, or followed by another colon, is not a parameter.
 */
export function compile(sql: string): CompiledStatement {
  const cached = compiled.get(sql);
  if (cached) return cached;
  const names: string[] = [];
  const text = sql.replace(/(?<![:\w]):([a-zA-Z_]\w*)/g, (_match, name: string) => {
    let index = names.indexOf(name);
    if (index < 0) index = names.push(name) - 1;
    return `$${index + 1}`;
  });
  const statement = { text, names, prepared: `baton_${createHash('sha256').update(text).digest('hex').slice(0, 24)}` };
  compiled.set(sql, statement);
  return statement;
}
