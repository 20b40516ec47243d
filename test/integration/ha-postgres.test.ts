/**
 * Issue 22, PostgreSQL with a streaming replica (scripts/ha-replicas.sh: primary 5433, replica 5434,
 * asynchronous): the store's multi-host URL follows a promotion, and tokens the lost primary issued
 * without replicating them are never issued again by the promoted one.
 * - 3 nodes, TTL 5 s, a task every 500 ms; the primary is killed (-9), the replica promoted 1 s later:
 *   the history checker finds no violation, and runs resume within 5 s of the new primary accepting writes.
 * - Tokens: replication is cut, a new handle on the primary issues a token (its connection's token bump
 *   is not replicated either), the primary dies, the replica is promoted: the next token is greater.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { HA_POSTGRES_URL, haScript as ha, haSummary, killPrimaryAndPromote, runHaFailover } from '../chaos/ha.js';
import { openPostgresStore } from '../../src/stores/postgres/index.js';
import type { Store } from '../../src/stores/contract.js';
import { nodeInfo } from '../conformance/store-conformance.js';

const psql = (port: number, sql: string) =>
  execFileSync('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-XAtqc', sql], { encoding: 'utf8' }).trim();
const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('PostgreSQL primary + streaming replica, promoted', () => {
  afterAll(() => {
    ha('pg-reset'); // leave a healthy pair for the next run
  }, 90_000);

  it('never repeats a token the lost primary issued without replicating it', async () => {
    ha('pg-reset');
    const opened: Store[] = [];
    const open = async () => {
      const store = await openPostgresStore(HA_POSTGRES_URL, { cluster: 'ha-tokens' });
      opened.push(store);
      return store;
    };
    try {
      const before = await open();
      const session = await before.openSession(nodeInfo('a'), 5000);
      await before.tryAcquire('k0', session.id);
      // Stop streaming: from now on the primary's writes stay on the primary.
      psql(5434, "ALTER SYSTEM SET primary_conninfo = ''");
      psql(5434, 'SELECT pg_reload_conf()');
      for (let i = 0; i < 100 && psql(5433, 'SELECT count(*) FROM pg_stat_replication') !== '0'; i++) await pause(100);
      expect(psql(5433, 'SELECT count(*) FROM pg_stat_replication')).toBe('0');
      // A handle made now bumps the sequence on the primary alone, then issues a token above the bump.
      const lonely = await open();
      const lonelySession = await lonely.openSession(nodeInfo('b'), 5000);
      const lost = await lonely.tryAcquire('k1', lonelySession.id);
      if (!lost.acquired) throw new Error('k1 was not acquired');

      ha('pg-kill');
      ha('pg-promote');
      const after = await open();
      const afterSession = await after.openSession(nodeInfo('c'), 5000);
      const next = await after.tryAcquire('k1', afterSession.id);
      if (!next.acquired) throw new Error('k1 was not acquired after the promotion');
      console.log(`tokens: lost primary issued ${lost.token}, promoted replica issued ${next.token}`);
      expect(next.token).toBeGreaterThan(lost.token);
    } finally {
      await Promise.allSettled(opened.map((s) => s.close()));
    }
  }, 90_000);

  it('3 nodes ride through kill -9 of the primary and promotion of the replica', async () => {
    ha('pg-reset');
    const result = await runHaFailover({
      url: HA_POSTGRES_URL,
      cluster: `ha-pg-${Date.now()}`,
      fault: killPrimaryAndPromote,
    });
    console.log(haSummary('postgres kill+promote', result));
    expect(result.check.violations).toEqual([]);
    expect(result.check.undecidable).toEqual([]);
    expect(result.resumeMs).toBeGreaterThanOrEqual(0);
    expect(result.resumeMs).toBeLessThan(5000);
    // The promoted primary is on a new timeline: its first connection moved the sequence 10^12 ahead.
    expect(result.tokens.after - result.tokens.before).toBeGreaterThanOrEqual(1_000_000_000_000n - 1_000_000n);
  }, 120_000);
});
