/**
 * Peer for lock throughput on the same PostgreSQL: `pg_try_advisory_lock(k)` + `pg_advisory_unlock(k)`
 * on one connection (as the Redis peers share one client and baton's handle has one statement
 * connection). One op = acquire + release; sequential and 10-way concurrent on distinct keys. The pg
 * client queues the 10 loops' statements on its connection (no pipelining): that is the peer as people write it.
 * It has no fencing token, no TTL and no notification: the floor of what a lock on PostgreSQL costs.
 */
import { throughput, type OpsPerSec } from '../locks.js';

export async function pgAdvisoryLockOps(url: string, windowMs: number): Promise<OpsPerSec> {
  const pg = (await import('pg')).default;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const base = 0x0ba80000 + Math.floor(Math.random() * 0xffff) * 16;
    const op = async (worker: number) => {
      const key = base + worker;
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [key]);
      if (rows[0]?.ok !== true) throw new Error(`bench: advisory lock ${key} unexpectedly held`);
      const released = await client.query<{ ok: boolean }>('SELECT pg_advisory_unlock($1) AS ok', [key]);
      if (released.rows[0]?.ok !== true) throw new Error(`bench: advisory unlock ${key} refused`);
    };
    for (let i = 0; i < 20; i++) await op(0);
    return { seq: await throughput(1, windowMs, op), c10: await throughput(10, windowMs, op) };
  } finally {
    await client.end();
  }
}
