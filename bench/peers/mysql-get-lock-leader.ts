/**
 * Peer: a MySQL/MariaDB `GET_LOCK` leader loop, the strongest form of it — each process blocks in
 * `SELECT GET_LOCK(name, …)` (no deadline) on its own connection, so the lock passes on as soon as the holder's
 * connection ends (crash: the server sees the socket close) or it calls `RELEASE_LOCK` (SIGTERM). While
 * leading it "runs" a tick every 250 ms. It has no TTL and no self-fencing: a paused holder keeps the lock.
 * (The lock-ops peer of the same function, `peers.mysql-get-lock.opsPerSec`, is another module.)
 */
import type { ChildGroup } from '../children.js';
import type { Say } from '../util.js';
import { runBlockingLockLeader } from './blocking-lock-leader.js';

export interface GetLockLeaderChildConfig {
  readonly id: string;
  readonly url: string;
  readonly name: string;
}

export async function runGetLockLeaderChild(c: GetLockLeaderChildConfig, say: Say): Promise<void> {
  const mysql = (await import('mysql2/promise')).default;
  const connection = await mysql.createConnection(c.url);
  await runBlockingLockLeader(
    {
      // "For ever", written as a loop: MySQL takes a negative timeout as infinite, MariaDB answers NULL to it.
      // Each wait is an hour; 0 (timed out) waits again.
      acquire: async () => {
        for (;;) {
          const [rows] = await connection.query('SELECT GET_LOCK(?, 3600) AS got', [c.name]);
          if (Number((rows as { got: unknown }[])[0]?.got) === 1) return;
        }
      },
      release: () => connection.query('SELECT RELEASE_LOCK(?)', [c.name]),
      close: () => connection.end(),
    },
    say,
  );
}

export function getLockLeaderFleet(url: string, name: string) {
  return (group: ChildGroup, id: string) => group.spawn(id, { kind: 'mysql-get-lock-leader', url, name });
}
