/**
 * The woken zombie against an external fenced table (issue 18), in real processes: 3 baton nodes (TTL
 * 2 s) run a task every 500 ms whose handler reads the checkpoint, sleeps 300 ms (its own timer, not
 * baton's), then writes the user's own table fenced `UPDATE … WHERE token <= $token` and commits. The
 * owner gets SIGSTOP during that sleep and SIGCONT just after the successor took over; the table's log
 * then says whether the woken ex-owner's write got in (a stale write accepted).
 *
 * Variants — what protects the table:
 * - `assert`: the handler calls `ctx.assertOwner()` right before its write (no onAcquire hook); the
 *   ex-owner wakes as soon as the successor reports `owner:acquired`.
 * - `hook`: only the successor's `onAcquire` writes its token into the table (the handler checks nothing);
 *   the ex-owner wakes as soon as that hook has resolved.
 * - `none`: neither (the negative control: the ex-owner's write must get in, or the fault does not bite).
 *
 * The external table is PostgreSQL (`external: 'postgres'`) or a SQLite file of its own (`'sqlite'`).
 * Every write the table accepted is logged in the same transaction with its token and tick, so the count
 * of stale writes comes from the table, not from what the children say.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChildGroup, type Child, type ChildMessage } from './children.js';
import { progress, type Say } from './util.js';

export type ZombieVariant = 'assert' | 'hook' | 'none';
export const ZOMBIE_VARIANTS: readonly ZombieVariant[] = ['assert', 'hook', 'none'];

/** Where the user's own table lives. */
export type ExternalTable = { readonly kind: 'postgres'; readonly url: string; readonly table: string } | { readonly kind: 'sqlite'; readonly path: string; readonly table: string };

export interface ZombieChildConfig {
  readonly id: string;
  readonly store: string;
  readonly cluster: string;
  readonly variant: ZombieVariant;
  readonly external: ExternalTable;
}

const TTL = '2s';
const EVERY = '500ms';
const HANDLER_SLEEP_MS = 300;

/** The user's table: one fenced row, and a log of every write it accepted. */
interface Fenced {
  /** The handler's write: accepted only if no greater token was written. Resolves true when accepted. */
  write(token: bigint, tick: number, node: string, value: number): Promise<boolean>;
  /** The onAcquire fence: writes the new token alone. */
  fence(token: bigint, node: string): Promise<boolean>;
  /** Accepted handler writes made with `token` for `tick`. */
  accepted(token: bigint, tick: number): Promise<number>;
  close(): Promise<void>;
}

async function openFenced(external: ExternalTable): Promise<Fenced> {
  const t = external.table;
  const log = `${t}_log`;
  if (external.kind === 'postgres') {
    const pg = (await import('pg')).default;
    const client = new pg.Client({ connectionString: external.url });
    await client.connect();
    await client.query(`CREATE TABLE IF NOT EXISTS ${t} (id int PRIMARY KEY, token bigint NOT NULL, value int NOT NULL, writer text NOT NULL)`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${log} (token bigint NOT NULL, tick bigint NOT NULL, node text NOT NULL, value int NOT NULL)`);
    await client.query(`INSERT INTO ${t} VALUES (1, 0, 0, '') ON CONFLICT (id) DO NOTHING`);
    return {
      // One statement: the fenced update, and the log row only if the update matched.
      write: async (token, tick, node, value) =>
        ((
          await client.query(
            `WITH u AS (UPDATE ${t} SET token = $1, value = $4, writer = $3 WHERE id = 1 AND token <= $1 RETURNING token)
             INSERT INTO ${log} (token, tick, node, value) SELECT token, $2, $3, $4 FROM u`,
            [token.toString(), tick, node, value],
          )
        ).rowCount ?? 0) === 1,
      fence: async (token, node) => ((await client.query(`UPDATE ${t} SET token = $1, writer = $2 WHERE id = 1 AND token <= $1`, [token.toString(), node])).rowCount ?? 0) === 1,
      accepted: async (token, tick) => Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${log} WHERE token = $1 AND tick = $2`, [token.toString(), tick])).rows[0]?.n ?? 0),
      close: () => client.end(),
    };
  }
  const Database = (await import('better-sqlite3')).default;
  const db = new Database(external.path);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  db.exec(`CREATE TABLE IF NOT EXISTS ${t} (id INTEGER PRIMARY KEY, token INTEGER NOT NULL, value INTEGER NOT NULL, writer TEXT NOT NULL)`);
  db.exec(`CREATE TABLE IF NOT EXISTS ${log} (token INTEGER NOT NULL, tick INTEGER NOT NULL, node TEXT NOT NULL, value INTEGER NOT NULL)`);
  db.prepare(`INSERT OR IGNORE INTO ${t} VALUES (1, 0, 0, '')`).run();
  db.defaultSafeIntegers(true);
  const update = db.prepare(`UPDATE ${t} SET token = ?, value = ?, writer = ? WHERE id = 1 AND token <= ?`);
  const insert = db.prepare(`INSERT INTO ${log} (token, tick, node, value) VALUES (?, ?, ?, ?)`);
  const fence = db.prepare(`UPDATE ${t} SET token = ?, writer = ? WHERE id = 1 AND token <= ?`);
  const count = db.prepare(`SELECT count(*) AS n FROM ${log} WHERE token = ? AND tick = ?`);
  // IMMEDIATE: the fenced update and its log row in one write transaction, whoever else writes the file.
  const write = db.transaction((token: bigint, tick: number, node: string, value: number) => {
    if (update.run(token, value, node, token).changes !== 1) return false;
    insert.run(token, tick, node, value);
    return true;
  });
  return {
    write: async (token, tick, node, value) => write.immediate(token, tick, node, value),
    fence: async (token, node) => fence.run(token, node, token).changes === 1,
    accepted: async (token, tick) => Number((count.get(token, tick) as { n: bigint }).n),
    close: async () => void db.close(),
  };
}

/** One node of the fleet (bench/node-process.ts, kind `zombie`). Says `sleeping`, `wrote`, `refused`, `acquired`, `fenced`. */
export async function runZombieChild(c: ZombieChildConfig, say: Say): Promise<void> {
  const { createCluster } = await import('../src/node/node.js');
  const { silentLogger } = await import('../src/core/logger.js');
  const table = await openFenced(c.external);
  const cluster = await createCluster({ store: c.store, name: c.cluster, node: { id: c.id }, ttl: TTL, rebalanceAfter: '1h', logger: silentLogger });
  const onAcquire =
    c.variant === 'hook'
      ? {
          onAcquire: async (ctx: { token: bigint }) => {
            const fenced = await table.fence(ctx.token, c.id);
            say({ type: 'fenced', token: ctx.token.toString(), fenced });
          },
        }
      : {};
  cluster.task('zombie', { every: EVERY, ...onAcquire }, async (ctx) => {
    const tick = ctx.tick.getTime();
    const token = ctx.token.toString();
    const value = ((await ctx.checkpoint.get()) as number | undefined) ?? 0;
    say({ type: 'sleeping', tick, token });
    // The handler's own timer, deliberately not tied to ctx.signal: after a pause it may fire before any of baton's.
    await new Promise((resolve) => setTimeout(resolve, HANDLER_SLEEP_MS));
    if (c.variant === 'assert') {
      try {
        ctx.assertOwner();
      } catch (error) {
        say({ type: 'refused', tick, token, by: 'assertOwner', signalAborted: ctx.signal.aborted });
        throw error;
      }
    }
    const accepted = await table.write(ctx.token, tick, c.id, value + 1);
    say({ type: 'wrote', tick, token, accepted });
    if (accepted) await ctx.checkpoint.commit(value + 1);
  });
  cluster.on('owner:acquired', (e) => say({ type: 'acquired', token: e.token.toString() }));
  cluster.on('error', (e) => say({ type: 'error', where: e.where, message: e.error.message }));
  const shutdown = () => {
    void cluster
      .close()
      .then(() => table.close())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  await cluster.start();
  say({ type: 'ready', pid: process.pid });
}

export interface ZombieResult {
  readonly variant: ZombieVariant;
  readonly repetitions: number;
  /** Writes of a woken ex-owner the external table accepted after its successor took over (target 0). */
  readonly staleAccepted: number;
  /** Woken ex-owners stopped by `ctx.assertOwner()` before writing. */
  readonly refusedByAssert: number;
  /** Woken ex-owners whose write the table refused (its token was below the successor's). */
  readonly refusedByTable: number;
  /** ms from SIGSTOP to the successor's `acquired` (or `fenced`) message: p50 and max. */
  readonly takeoverMsP50: number;
  readonly takeoverMsMax: number;
  /** Repetitions where nobody took over in time, or the woken owner said nothing about its run. */
  readonly timeouts: number;
}

export interface ZombieTrialOptions {
  readonly store: string;
  readonly cluster: string;
  readonly external: ExternalTable;
  readonly variant: ZombieVariant;
  readonly repetitions: number;
  /** Called after each repetition (the bench prints progress). */
  readonly onRepetition?: (i: number, line: string) => void;
}

/** The successor's message after which the ex-owner is woken. */
const WAKE_AFTER: Record<ZombieVariant, string> = { assert: 'acquired', hook: 'fenced', none: 'acquired' };

/** Runs `repetitions` woken-zombie trials on one fleet of 3 processes; kills the fleet at the end. */
export async function runZombieTrials(o: ZombieTrialOptions): Promise<ZombieResult> {
  const group = new ChildGroup();
  const table = await openFenced(o.external);
  const gaps: number[] = [];
  let staleAccepted = 0;
  let refusedByAssert = 0;
  let refusedByTable = 0;
  let timeouts = 0;
  let lateStops = 0;
  const isLive = (node: string) => {
    const c = group.byId(node);
    return c !== undefined && c.alive && !c.stopped;
  };
  try {
    await Promise.all(['a', 'b', 'c'].map((id) => group.spawn(id, { kind: 'zombie', store: o.store, cluster: o.cluster, variant: o.variant, external: o.external })));
    for (let i = 0; i < o.repetitions; i++) {
      // The owner is in its handler's sleep: stop it now (the sleep is 300 ms; the pipe takes a few).
      const sleeping = await group.waitFor('an owner in its handler', (m) => m.type === 'sleeping' && isLive(m.node), 15_000);
      const victim = group.byId(sleeping.node) as Child;
      const token = BigInt(sleeping.token as string);
      const tick = sleeping.tick as number;
      const stoppedAt = Date.now();
      group.signal(victim, 'SIGSTOP');
      // What the victim says about this run, whenever it arrives (it may have written before the stop landed).
      const outcome = new Promise<ChildMessage>((resolve) => {
        const stop = group.subscribe((m) => {
          if (m.node === victim.id && m.tick === tick && (m.type === 'wrote' || m.type === 'refused')) {
            stop();
            resolve(m);
          }
        });
      });
      let line: string;
      try {
        const successor = await group.waitFor(
          `${WAKE_AFTER[o.variant]} after ${victim.id} stopped`,
          (m) => m.type === WAKE_AFTER[o.variant] && m.node !== victim.id && BigInt(m.token as string) > token,
          20_000,
        );
        gaps.push(successor.at - stoppedAt);
        group.signal(victim, 'SIGCONT');
        let timer: NodeJS.Timeout | undefined;
        const silent = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${victim.id} said nothing about its run of ${tick} after waking`)), 10_000);
        });
        const said = await Promise.race([outcome, silent]).finally(() => clearTimeout(timer));
        if (said.at < stoppedAt + 5) {
          // The stop landed after the write (a loaded machine delivered "sleeping" 300 ms late): not a trial.
          o.onRepetition?.(i, `not counted: ${victim.id} wrote before it was stopped`);
          if (++lateStops > o.repetitions) throw new Error('bench: the owner was stopped after its write in too many trials');
          i -= 1;
          continue;
        }
        const stale = await table.accepted(token, tick);
        staleAccepted += stale;
        if (said.type === 'refused') refusedByAssert += 1;
        else if (!said.accepted) refusedByTable += 1;
        line = `${said.type}${said.type === 'wrote' ? ` accepted=${String(said.accepted)}` : ''}, stale in table ${stale}, takeover ${successor.at - stoppedAt} ms`;
      } catch (error) {
        timeouts += 1;
        if (victim.stopped) group.signal(victim, 'SIGCONT');
        line = `timeout: ${(error as Error).message}`;
      }
      o.onRepetition?.(i, line);
    }
  } finally {
    await group.stopAll();
    await table.close();
  }
  const sorted = [...gaps].sort((x, y) => x - y);
  return {
    variant: o.variant,
    repetitions: o.repetitions,
    staleAccepted,
    refusedByAssert,
    refusedByTable,
    takeoverMsP50: sorted[Math.floor(sorted.length / 2)] ?? 0,
    takeoverMsMax: sorted.at(-1) ?? 0,
    timeouts,
  };
}

/** The external table for a store's trials: a SQLite file beside the SQLite store, PostgreSQL otherwise. */
export function externalFor(store: string, pgUrl: string, name: string): { external: ExternalTable; cleanup: () => Promise<void> } {
  const table = `zombie_${name.replace(/[^a-z0-9]/gi, '_').toLowerCase()}`;
  if (store.startsWith('sqlite:')) {
    const dir = mkdtempSync(join(tmpdir(), 'baton-zombie-'));
    return { external: { kind: 'sqlite', path: join(dir, 'external.db'), table }, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  return {
    external: { kind: 'postgres', url: pgUrl, table },
    cleanup: async () => {
      const pg = (await import('pg')).default;
      const client = new pg.Client({ connectionString: pgUrl });
      await client.connect();
      try {
        await client.query(`DROP TABLE IF EXISTS ${table}, ${table}_log`);
      } finally {
        await client.end();
      }
    },
  };
}

/** Prints one repetition's line (the bench's progress). */
export const zombieProgress = (label: string) => (i: number, line: string) => progress(`zombie ${label} #${i + 1}: ${line}`);
