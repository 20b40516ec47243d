/** Describes the machine and the servers the bench ran on. */
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { createRequire } from 'node:module';
import { errorText } from './util.js';

export interface Machine {
  cpu: string;
  cores: number;
  ramGiB: number;
  os: string;
  node: string;
  loadAvgAtStart: number[];
  servers: Record<string, string>;
  packages: Record<string, string>;
}

const withTimeout = <T>(p: Promise<T>, ms = 3000): Promise<T> =>
  Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms))]);

async function serverVersions(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const tryOne = async (name: string, fn: () => Promise<string>) => {
    try {
      out[name] = await withTimeout(fn());
    } catch (error) {
      out[name] = `unknown (${errorText(error)})`;
    }
  };
  await tryOne('postgres', async () => {
    const pg = (await import('pg')).default;
    const c = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' });
    await c.connect();
    try {
      return String((await c.query('SHOW server_version')).rows[0]?.server_version);
    } finally {
      await c.end();
    }
  });
  await tryOne('mysql', async () => {
    const mysql = await import('mysql2/promise');
    const c = await mysql.createConnection('mysql://root@127.0.0.1:3306/test');
    try {
      const [rows] = await c.query('SELECT VERSION() AS v');
      return String((rows as { v: string }[])[0]?.v);
    } finally {
      await c.end();
    }
  });
  await tryOne('redis', async () => {
    const { Redis } = await import('ioredis');
    const c = new Redis({ host: '127.0.0.1', port: 6379, maxRetriesPerRequest: 1 });
    try {
      return /redis_version:(\S+)/.exec(await c.info('server'))?.[1] ?? '?';
    } finally {
      c.disconnect();
    }
  });
  await tryOne('etcd', async () => {
    const res = await fetch('http://127.0.0.1:2379/version');
    return ((await res.json()) as { etcdserver: string }).etcdserver;
  });
  await tryOne('zookeeper', () =>
    new Promise<string>((resolve, reject) => {
      const s = createConnection({ host: '127.0.0.1', port: 2181 }, () => s.write('srvr'));
      let data = '';
      s.on('data', (d) => (data += d.toString()));
      s.on('end', () => resolve(/version: ([^,\n-]+)/.exec(data)?.[1]?.trim() ?? '?'));
      s.on('error', reject);
    }),
  );
  return out;
}

export async function describeMachine(): Promise<Machine> {
  let os = `Linux ${release()}`;
  try {
    const pretty = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
    if (pretty) os = `${pretty}, kernel ${release()}`;
  } catch {
    /* not Linux */
  }
  const require = createRequire(import.meta.url);
  const packages: Record<string, string> = {};
  for (const p of ['better-sqlite3', 'pg', 'mysql2', 'ioredis', 'etcd3', 'node-zookeeper-client', 'bullmq', 'pg-boss', 'redlock']) {
    try {
      packages[p] = (require(`${p}/package.json`) as { version: string }).version;
    } catch {
      packages[p] = '?';
    }
  }
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    ramGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os,
    node: process.version,
    loadAvgAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
    servers: await serverVersions(),
    packages,
  };
}
