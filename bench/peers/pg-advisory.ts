/**
 * Peer: a PostgreSQL advisory-lock leader loop, the strongest form of it — each process blocks in
 * `SELECT pg_advisory_lock(k)` on its own connection, so the lock passes on as soon as the holder's
 * backend ends (crash: the server sees the socket close) or unlocks (SIGTERM). While leading it "runs" a
 * tick every 250 ms. It has no TTL and no self-fencing: a paused holder keeps the lock.
 */
import type { ChildGroup } from '../children.js';
import type { Say } from '../util.js';
import { runBlockingLockLeader } from './blocking-lock-leader.js';

export interface AdvisoryChildConfig {
  readonly id: string;
  readonly url: string;
  readonly key: number;
}

export async function runAdvisoryChild(c: AdvisoryChildConfig, say: Say): Promise<void> {
  const pg = (await import('pg')).default;
  const client = new pg.Client({ connectionString: c.url });
  await client.connect();
  await runBlockingLockLeader(
    {
      acquire: async () => void (await client.query('SELECT pg_advisory_lock($1)', [c.key])),
      release: () => client.query('SELECT pg_advisory_unlock($1)', [c.key]),
      close: () => client.end(),
    },
    say,
  );
}

export function advisoryFleet(url: string, key: number) {
  return (group: ChildGroup, id: string) => group.spawn(id, { kind: 'pg-advisory', url, key });
}
