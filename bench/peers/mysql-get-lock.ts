/**
 * Peer for lock throughput on the same MySQL/MariaDB: `GET_LOCK(name, 0)` + `RELEASE_LOCK(name)`, the
 * server's named locks as people use them. Sequential: one loop on one connection; 10-way: 10 loops,
 * each on its own connection (a named lock belongs to the connection that took it, and mysql2 serialises
 * a connection's queries anyway). One op = acquire + release. No fencing token, no TTL, no notification
 * and nothing written: the floor of what a lock on MySQL costs.
 */
import { throughput, type OpsPerSec } from '../locks.js';

export async function mysqlGetLockOps(url: string, windowMs: number, run: string): Promise<OpsPerSec> {
  const mysql = await import('mysql2/promise');
  const connections = await Promise.all(Array.from({ length: 10 }, () => mysql.createConnection(url.replace(/\?.*$/, ''))));
  try {
    const op = async (worker: number) => {
      const name = `bench-peer:${run}:${worker}`;
      const connection = connections[worker]!;
      const [got] = await connection.query<import('mysql2').RowDataPacket[]>('SELECT GET_LOCK(?, 0) AS ok', [name]);
      if (Number(got[0]?.ok) !== 1) throw new Error(`bench: named lock ${name} unexpectedly held`);
      const [released] = await connection.query<import('mysql2').RowDataPacket[]>('SELECT RELEASE_LOCK(?) AS ok', [name]);
      if (Number(released[0]?.ok) !== 1) throw new Error(`bench: RELEASE_LOCK(${name}) refused`);
    };
    for (let i = 0; i < 20; i++) await op(0);
    return { seq: await throughput(1, windowMs, op), c10: await throughput(10, windowMs, op) };
  } finally {
    await Promise.all(connections.map((c) => c.end()));
  }
}
