/**
 * The woken zombie against the user's own fenced table (issue 18), in real processes on SQLite, PostgreSQL
 * and Redis: 3 nodes, TTL 2 s, a task every 500 ms whose handler reads the checkpoint, sleeps 300 ms on its
 * own timer, then writes `UPDATE … WHERE token <= $token` (PostgreSQL; a SQLite file of its own for the
 * SQLite store). The owner is SIGSTOPped in that sleep and SIGCONTed just after the successor took over.
 * No stale write of the woken owner may reach the table, whether the handler calls `ctx.assertOwner()`
 * before writing or the successor's `onAcquire` fences the table. A few repetitions here (the file runs in
 * about a minute); `npm run bench -- --full --only zombie` runs 100 per store and variant (bench/RESULTS.md).
 * The control without either (once, on SQLite) must let the stale write in: proof that the pause bites.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { randomId } from '../../src/core/ids.js';
import { openStore } from '../../src/stores/open-store.js';
import { externalFor, runZombieTrials, type ZombieVariant } from '../../bench/zombie.js';
import { SERVER_BACKENDS, sqlitePostgresRedis } from '../helpers/backends.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-zombie-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pg = SERVER_BACKENDS.find((b) => b.kind === 'postgres')!;
const PG_URL = pg.url('127.0.0.1', pg.port);
/** Per store and variant: each repetition takes about the TTL (the successor waits for the session to expire). */
const REPETITIONS = 3;

async function trials(url: string, variant: ZombieVariant, repetitions: number) {
  const cluster = `zombie-${variant}-${randomId(4)}`;
  const { external, cleanup } = externalFor(url, PG_URL, cluster);
  try {
    return await runZombieTrials({ store: url, cluster, external, variant, repetitions });
  } finally {
    await cleanup();
    const store = await openStore(url, { cluster });
    try {
      for (const prefix of ['run/', 'checkpoint/', 'decl/']) await store.deleteBefore(prefix, `${prefix}\uffff`);
    } finally {
      await store.close();
    }
  }
}

describe.each(sqlitePostgresRedis(dir))('a woken owner on $kind', ({ url }) => {
  it('that calls ctx.assertOwner() before its external write never gets a stale write in', async () => {
    const r = await trials(url, 'assert', REPETITIONS);
    expect(r).toMatchObject({ timeouts: 0, staleAccepted: 0, refusedByAssert: REPETITIONS });
  }, 40_000);

  it('whose table the successor fenced in onAcquire has its stale write refused by the table', async () => {
    const r = await trials(url, 'hook', REPETITIONS);
    expect(r).toMatchObject({ timeouts: 0, staleAccepted: 0, refusedByTable: REPETITIONS });
  }, 40_000);
});

it('the control (neither assertOwner nor onAcquire) lets the woken owner’s stale write in', async () => {
  const r = await trials(`sqlite:${join(dir, 'control.db')}`, 'none', 2);
  expect(r.timeouts).toBe(0);
  expect(r.staleAccepted).toBeGreaterThan(0);
}, 40_000);
