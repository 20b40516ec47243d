/**
 * The SQL stores' change polls back off while their poll fails and say `any` once it succeeds again
 * (docs/reliability.md, "Back-off while the store fails"). Without the back-off a failing poll was
 * retried every `pollMs` (20 a second at the default 50 ms) and, when only the statement failed, watchers
 * never heard that changes may have been missed. SQLite on a real file with a FakeClock; MySQL/MariaDB on
 * the real server at MYSQL_URL with the real clock, through a TCP proxy that cuts the connection, and with
 * the change table renamed away (the statement fails, the connection stays up).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { Clock } from '../../src/core/clock.js';
import { randomId } from '../../src/core/ids.js';
import type { Change, Store } from '../../src/stores/contract.js';
import { MysqlConnection } from '../../src/stores/mysql/connection.js';
import { openMysqlStore } from '../../src/stores/mysql/index.js';
import { SqliteStore } from '../../src/stores/sqlite/sqlite-store.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-poll-backoff-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** Counts the timers the store arms: on SQLite every one is a poll. */
function countingClock(clock: FakeClock): { clock: Clock; timers: () => number } {
  let timers = 0;
  return {
    clock: {
      now: () => clock.now(),
      monotonic: () => clock.monotonic(),
      setTimer: (ms, fn) => {
        timers += 1;
        return clock.setTimer(ms, fn);
      },
    },
    timers: () => timers,
  };
}

async function advance(clock: FakeClock, ms: number, step = 10): Promise<void> {
  for (let t = 0; t < ms; t += step) await clock.advance(step);
}

describe('SQLite change poll', () => {
  it('backs off while the change table cannot be read, then says any and polls every pollMs again', async () => {
    const file = join(dir, `poll-${randomId(4)}.db`);
    const fake = new FakeClock();
    const counting = countingClock(fake);
    const store = await SqliteStore.open({ file, cluster: 'c', clock: counting.clock, pollMs: 50 });
    const writer = await SqliteStore.open({ file, cluster: 'c' });
    const saboteur = new Database(file);
    cleanup.push(() => store.close(), () => writer.close(), () => void saboteur.close());
    const hints: Change[] = [];
    store.watch((change) => hints.push(change));
    await writer.put('a', 1);
    await advance(fake, 100);
    expect(hints).toContainEqual({ scope: 'records' });

    // Every read of the change counters fails now (the prepared statement is re-prepared and finds no table).
    saboteur.exec('ALTER TABLE baton_changes RENAME TO baton_changes_away');
    const before = counting.timers();
    await advance(fake, 4000);
    const during = counting.timers() - before;
    // Every pollMs would be 80 in 4 s; 50 ms doubling up to 2 s (equal jitter) is 6 to 9.
    expect(during).toBeGreaterThanOrEqual(5);
    expect(during).toBeLessThanOrEqual(10);

    saboteur.exec('ALTER TABLE baton_changes_away RENAME TO baton_changes');
    hints.length = 0;
    await advance(fake, 2000); // at most one back-off pause (≤ 2 s) until the next poll
    expect(hints).toEqual([{ scope: 'any' }]);
    // Reset: the next change is seen within a poll or two, not a back-off pause.
    hints.length = 0;
    await writer.put('a', 2);
    await advance(fake, 100);
    expect(hints).toEqual([{ scope: 'records' }]);
  });
});

const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const mysqlTarget = new URL(MYSQL_URL.replace(/^mariadb:/, 'mysql:'));

/** A store on its own tables (the test renames one), dropped afterwards. */
async function openOwnMysql(url: string, prefix: string, cluster: string): Promise<Store> {
  const store = await openMysqlStore(`${url}${url.includes('?') ? '&' : '?'}pollMs=50&prefix=${prefix}`, { cluster });
  cleanup.push(() => store.close());
  return store;
}

/**
 * Calls named `labels` made by every MySQL handle of this process, counted as they are sent. Each poll reads
 * the change table ('watch') after, every crashCheckMs, a look for dead sessions, and a failed call ends it.
 */
function countCalls(labels: readonly string[]): () => number {
  let polls = 0;
  const original = MysqlConnection.prototype.exclusive;
  vi.spyOn(MysqlConnection.prototype, 'exclusive').mockImplementation(function (this: MysqlConnection, what, fn) {
    if (labels.includes(what)) polls += 1;
    return original.call(this, what, fn);
  } as typeof original);
  return () => polls;
}

async function waitFor(what: string, check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('MySQL change poll', () => {
  const prefix = `pb${randomId(4).replace(/[^A-Za-z0-9]/g, '')}_`;
  afterAll(async () => {
    const admin = await mysql.createConnection(MYSQL_URL.replace(/^mariadb:/, 'mysql:'));
    try {
      for (const table of ['owners', 'sessions', 'records', 'changes', 'changes_away', 'meta']) {
        await admin.query(`DROP TABLE IF EXISTS ${prefix}${table}`);
      }
    } finally {
      await admin.end();
    }
  });

  it('backs off while the connection is cut, and hints resume after it is restored', { timeout: 30_000 }, async () => {
    const proxy = new TcpProxy(mysqlTarget.hostname, Number(mysqlTarget.port || 3306));
    const port = await proxy.start();
    cleanup.push(() => proxy.close());
    const cluster = `cut-${randomId(4)}`;
    const viaProxy = new URL(MYSQL_URL.replace(/^mariadb:/, 'mysql:'));
    viaProxy.host = `127.0.0.1:${port}`;
    const store = await openOwnMysql(viaProxy.toString(), prefix, cluster);
    const writer = await openOwnMysql(MYSQL_URL, prefix, cluster);
    // Disconnected, a poll fails at its first call, whichever it is: one of these per poll.
    const polls = countCalls(['watch', 'reaping dead sessions']);
    const hints: Change[] = [];
    store.watch((change) => hints.push(change));
    await pause(200); // the baseline is read on the watching handle's own connection, not the writer's
    await writer.put('a', 1);
    await waitFor('the first hint', () => hints.some((h) => h.scope === 'records'), 5000);

    proxy.cut();
    await pause(300); // the first failures; the connection is down
    const before = polls();
    await pause(3000);
    const during = polls() - before;
    // Every pollMs would be about 60 in 3 s; 50 ms doubling up to 2 s, begun 300 ms earlier, is 2 to 5.
    expect(during).toBeGreaterThanOrEqual(1);
    expect(during).toBeLessThanOrEqual(6);

    proxy.restore();
    hints.length = 0;
    await waitFor('any after the outage', () => hints.some((h) => h.scope === 'any'), 10_000);
    await pause(2100); // past any back-off pause still pending
    hints.length = 0;
    await writer.put('a', 2);
    await waitFor('a records hint after recovery', () => hints.some((h) => h.scope === 'records'), 1000);
  });

  it('backs off while the change table cannot be read on a live connection, then says any', { timeout: 30_000 }, async () => {
    const cluster = `stmt-${randomId(4)}`;
    const store = await openOwnMysql(MYSQL_URL, prefix, cluster);
    const admin = await mysql.createConnection(MYSQL_URL.replace(/^mariadb:/, 'mysql:'));
    cleanup.push(() => admin.end());
    // The look for dead sessions still succeeds: every poll reaches the read of the change table, once.
    const polls = countCalls(['watch']);
    const hints: Change[] = [];
    store.watch((change) => hints.push(change));
    await pause(200);

    await admin.query(`RENAME TABLE ${prefix}changes TO ${prefix}changes_away`);
    const before = polls();
    await pause(3000);
    const during = polls() - before;
    // Every pollMs would be about 60 in 3 s; 50 ms doubling up to 2 s is 5 to 8.
    expect(during).toBeGreaterThanOrEqual(3);
    expect(during).toBeLessThanOrEqual(9);

    hints.length = 0;
    await admin.query(`RENAME TABLE ${prefix}changes_away TO ${prefix}changes`);
    // No reconnection happened, so only the poll's recovery can say it.
    await waitFor('any after the poll recovers', () => hints.some((h) => h.scope === 'any'), 3000);
  });
});
