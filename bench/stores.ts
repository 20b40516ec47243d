/**
 * The stores the bench runs on: the servers of this machine (test/helpers/backends.ts, all on 127.0.0.1)
 * and a temporary SQLite file. Every bench key lives under its own prefix/schema/chroot so it can be
 * removed at the end without touching what the test suites write.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVER_BACKENDS } from '../test/helpers/backends.js';
import { errorText, progress } from './util.js';

export type StoreName = 'sqlite' | 'postgres' | 'mysql' | 'redis' | 'redis-connection' | 'etcd' | 'zookeeper';

export const DEFAULT_STORES: readonly StoreName[] = ['sqlite', 'postgres', 'mysql', 'redis', 'etcd', 'zookeeper'];
export const ALL_STORES: readonly StoreName[] = [...DEFAULT_STORES, 'redis-connection'];

export interface StoreSpec {
  readonly name: StoreName;
  readonly url: string;
  /** How crashes are detected, as measured (documented in RESULTS.md). */
  readonly crashMode: string;
  /** Crash-failover target in ms given the session TTL in ms. */
  crashTargetMs(ttlMs: number): number;
}

const serverUrl = (kind: string): string => {
  const backend = SERVER_BACKENDS.find((b) => b.kind === kind);
  if (!backend) throw new Error(`bench: no backend ${kind}`);
  return backend.url('127.0.0.1', backend.port);
};

/** Where SQLite files live for this run (removed by {@link cleanupStores}). */
let sqliteDir: string | undefined;

export function storeSpec(name: StoreName): StoreSpec {
  const fast = () => 1000;
  switch (name) {
    case 'sqlite':
      sqliteDir ??= mkdtempSync(join(tmpdir(), 'baton-bench-'));
      return { name, url: `sqlite:${join(sqliteDir, 'bench.db')}`, crashMode: 'same-host pid + start time check', crashTargetMs: fast };
    case 'postgres':
      return { name, url: `${serverUrl('postgres')}?schema=baton_bench`, crashMode: 'connection-bound sessions (crashDetection=true, default)', crashTargetMs: fast };
    case 'mysql':
      return { name, url: `${serverUrl('mysql')}?prefix=bbench_`, crashMode: 'connection-bound sessions (crashDetection=true, default)', crashTargetMs: fast };
    case 'redis':
      return { name, url: `${serverUrl('redis')}?prefix=bbench`, crashMode: 'crashDetection=process (default): connection gone AND same-host process gone', crashTargetMs: fast };
    case 'redis-connection':
      return { name, url: `${serverUrl('redis')}?prefix=bbench&crashDetection=connection`, crashMode: 'crashDetection=connection: connection gone (any host)', crashTargetMs: fast };
    case 'etcd':
      return { name, url: `${serverUrl('etcd')}?prefix=/baton-bench`, crashMode: 'same-host process identity check (crashCheckMs 500); other hosts: lease TTL (T+1 s grace)', crashTargetMs: (ttl) => ttl + 1000 };
    case 'zookeeper':
      return { name, url: serverUrl('zookeeper').replace(/\/[^/]*$/, '/baton-bench'), crashMode: 'same-host process identity check (crashCheckMs 500)', crashTargetMs: (ttl) => ttl + 1000 };
  }
}

export function parseStores(list: string | undefined): StoreName[] {
  if (!list) return [...DEFAULT_STORES];
  const names = list.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) if (!ALL_STORES.includes(n as StoreName)) throw new Error(`bench: unknown store "${n}" (known: ${ALL_STORES.join(', ')})`);
  return names as StoreName[];
}

/** Removes what the bench wrote: the SQLite dir, the bench schema/tables/prefixes on the servers. */
export async function cleanupStores(used: readonly StoreName[]): Promise<void> {
  const step = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (error) {
      progress(`cleanup ${what}: ${errorText(error)}`);
    }
  };
  if (sqliteDir) {
    rmSync(sqliteDir, { recursive: true, force: true });
    sqliteDir = undefined;
  }
  if (used.includes('postgres')) {
    await step('postgres', async () => {
      const pg = (await import('pg')).default;
      const client = new pg.Client({ connectionString: serverUrl('postgres') });
      await client.connect();
      try {
        await client.query('DROP SCHEMA IF EXISTS baton_bench CASCADE');
      } finally {
        await client.end();
      }
    });
  }
  if (used.includes('mysql')) {
    await step('mysql', async () => {
      const mysql = await import('mysql2/promise');
      const conn = await mysql.createConnection(serverUrl('mysql'));
      try {
        const [rows] = await conn.query("SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'bbench\\_%'");
        for (const row of rows as { t: string }[]) await conn.query(`DROP TABLE IF EXISTS \`${row.t}\``);
      } finally {
        await conn.end();
      }
    });
  }
  if (used.includes('redis') || used.includes('redis-connection')) {
    await step('redis', async () => {
      const { Redis } = await import('ioredis');
      const client = new Redis(serverUrl('redis'), { lazyConnect: true, maxRetriesPerRequest: 1 });
      await client.connect();
      try {
        for (const pattern of ['{bbench:*', 'bench-peer:*']) {
          let cursor = '0';
          for (let i = 0; i < 10_000; i++) {
            const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
            if (keys.length > 0) await client.del(...keys);
            cursor = next;
            if (cursor === '0') break;
          }
        }
      } finally {
        client.disconnect();
      }
    });
  }
  if (used.includes('etcd')) {
    await step('etcd', async () => {
      const { Etcd3 } = await import('etcd3');
      const client = new Etcd3({ hosts: '127.0.0.1:2379' });
      try {
        await client.delete().prefix('/baton-bench/');
        await client.delete().prefix('bench-election');
      } finally {
        client.close();
      }
    });
  }
  if (used.includes('zookeeper')) {
    await step('zookeeper', async () => {
      const zk = (await import('node-zookeeper-client')).default;
      const client = zk.createClient('127.0.0.1:2181', { sessionTimeout: 5000 });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('connect timeout')), 5000);
        client.once('connected', () => (clearTimeout(timer), resolve()));
        client.connect();
      });
      try {
        const remover = client as unknown as { removeRecursive(path: string, cb: (error: unknown) => void): void };
        await new Promise<void>((resolve) => remover.removeRecursive('/baton-bench', () => resolve()));
      } finally {
        client.close();
      }
    });
  }
}
