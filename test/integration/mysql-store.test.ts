/**
 * MySQL/MariaDB store behaviour beyond the conformance suite: URL validation, crash failover through
 * connection ids (and the cases where it must NOT fire), and a connection cut with reconnection.
 * Needs the server at MYSQL_URL (default the local test server) and `npm run build` (the crash test's
 * child process runs the built code in dist/).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionExpiredError, StoreUnavailableError, StoreUrlError } from '../../src/core/errors.js';
import { randomId } from '../../src/core/ids.js';
import type { Change, Store } from '../../src/stores/contract.js';
import { openMysqlStore } from '../../src/stores/mysql/index.js';
import { parseMysqlUrl } from '../../src/stores/mysql/mysql-url.js';
import { nodeInfo } from '../conformance/store-conformance.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const TTL = 60_000;
const RUN = randomId(4);
const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const opened: Store[] = [];

async function open(cluster: string, url = URL): Promise<Store> {
  const store = await openMysqlStore(url, { cluster });
  opened.push(store);
  return store;
}

afterAll(async () => {
  for (const store of opened) await store.close();
});

/** Polls `fn` until it returns true; the elapsed ms. */
async function until(fn: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if (await fn()) return performance.now() - started;
    await wait(25);
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

describe('mysql store URL', () => {
  it('parses credentials, port, database and options', () => {
    const parsed = parseMysqlUrl('mariadb://app:s%40cret@db.example:3307/baton?pollMs=20&prefix=x_&crashDetection=false&ssl=true');
    expect(parsed).toMatchObject({
      hosts: [{ host: 'db.example', port: 3307 }],
      user: 'app',
      password: 's@cret',
      database: 'baton',
      options: { pollMs: 20, prefix: 'x_', crashDetection: false },
      tls: { verify: 'full' },
    });
    expect(parseMysqlUrl('mysql://root@127.0.0.1/test')).toMatchObject({ hosts: [{ port: 3306 }], tls: undefined, options: { pollMs: 50, crashDetection: true } });
  });

  it.each([
    ['mysql://root:hunter2@127.0.0.1:3306/', /database/],
    ['mysql://root:hunter2@127.0.0.1:3306/test?pollMs=1', /pollMs must be an integer from 5/],
    ['mysql://root:hunter2@127.0.0.1:3306/test?bogus=1', /unknown option "bogus"/],
    ['mysql://root:hunter2@127.0.0.1:3306/test?pollMs=10&pollMs=20', /more than once/],
    ['mysql://root:hunter2@127.0.0.1:3306/test?prefix=a-b', /prefix/],
    ['mysql://root:hunter2@127.0.0.1:3306/test?crashDetection=maybe', /crashDetection must be true or false/],
    ['mysql://root:hunter2@127.0.0.1:3306/test?sslCert=/a.pem', /sslCert and sslKey go together/],
    ['mysql://root:hunter2@127.0.0.1:3306/test?ssl=false&sslCa=/ca.pem', /ssl=false/],
    ['postgres://root:hunter2@127.0.0.1/test', /scheme/],
  ])('rejects %s', async (url, message) => {
    const error = await openMysqlStore(url, { cluster: 'x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUrlError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain('hunter2');
    expect((error as Error).message).toContain('root:***@');
  });

  it('names an unreadable sslCa file', async () => {
    const error = await openMysqlStore(`${URL}?sslCa=/nonexistent/ca.pem`, { cluster: 'x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUrlError);
    expect((error as Error).message).toMatch(/sslCa: cannot read "\/nonexistent\/ca.pem"/);
  });

  it('fails to open with StoreUnavailableError when nothing listens', async () => {
    const error = await openMysqlStore('mysql://root:hunter2@127.0.0.1:1/test?connectTimeoutMs=500', { cluster: 'x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).not.toContain('hunter2');
  });
});

describe('mysql store crash detection', () => {
  let children: ChildProcess[] = [];
  afterAll(() => {
    for (const child of children) child.kill('SIGKILL');
    children = [];
  });

  /** A node in another process that opens a session (TTL 60 s) and takes `key` through dist/. */
  async function victim(cluster: string, key: string, url = URL): Promise<ChildProcess> {
    if (!existsSync('dist/stores/mysql/index.js')) throw new Error('run `npm run build` first: the child uses dist/');
    const script = `
      import { openMysqlStore } from './dist/stores/mysql/index.js';
      import { currentProcessIdentity } from './dist/core/process-identity.js';
      const store = await openMysqlStore(${JSON.stringify(url)}, { cluster: ${JSON.stringify(cluster)} });
      const info = { id: 'victim', host: 'h', pid: process.pid, version: 't', labels: {}, startedAt: 0, process: currentProcessIdentity(), tasks: {} };
      const { id } = await store.openSession(info, ${TTL});
      const r = await store.tryAcquire(${JSON.stringify(key)}, id);
      console.log(JSON.stringify({ acquired: r.acquired }));
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    const line = await new Promise<string>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`victim exited with ${code}`)));
      createInterface({ input: child.stdout! }).once('line', resolve);
    });
    expect(JSON.parse(line)).toEqual({ acquired: true });
    return child;
  }

  async function kill(child: ChildProcess): Promise<void> {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  it('frees the keys of a SIGKILLed process long before its TTL', async () => {
    const cluster = `crash-${RUN}`;
    const child = await victim(cluster, 'task/x');
    const store = await open(cluster);
    const me = await store.openSession(nodeInfo('survivor'), TTL);
    expect((await store.tryAcquire('task/x', me.id)).acquired).toBe(false); // the owner is alive
    await kill(child);
    const elapsed = await until(async () => (await store.tryAcquire('task/x', me.id)).acquired, 5000);
    expect(elapsed).toBeLessThan(2000);
    expect((await store.listSessions()).map((s) => s.info.id)).toEqual(['survivor']);
  });

  it('reaps a dead process in the background, so watchers hear of it without an acquisition', async () => {
    const cluster = `reap-${RUN}`;
    const child = await victim(cluster, 'task/y');
    const store = await open(cluster);
    const changes: Change[] = [];
    const unwatch = store.watch((change) => changes.push(change));
    try {
      await wait(100);
      await kill(child);
      await until(async () => changes.some((c) => c.scope === 'owners'), 3000);
      expect(await store.holder('task/y')).toBeNull();
      expect(await store.listSessions()).toEqual([]);
    } finally {
      unwatch();
    }
  });

  it('hears a crash through the crash watch (GET_LOCK on the dead connection), not the reaper rounds', async () => {
    const cluster = `watch-${RUN}`;
    const child = await victim(cluster, 'task/w');
    // The reaper's rounds are a minute apart: within the few seconds below only the crash watch can reap.
    const store = await open(cluster, `${URL}?crashCheckMs=60000`);
    const changes: Change[] = [];
    const unwatch = store.watch((change) => changes.push(change));
    try {
      await wait(300); // the first reap round (at the second poll) is over; the watch is waiting
      changes.length = 0;
      await kill(child);
      await until(async () => changes.some((c) => c.scope === 'owners'), 3000);
      expect(await store.holder('task/w')).toBeNull();
    } finally {
      unwatch();
    }
  });

  it('falls back to the TTL when the session was opened with crashDetection=false', async () => {
    const cluster = `ttl-only-${RUN}`;
    const child = await victim(cluster, 'task/z', `${URL}?crashDetection=false`);
    const store = await open(cluster);
    const me = await store.openSession(nodeInfo('survivor'), TTL);
    await kill(child);
    await wait(500);
    expect((await store.tryAcquire('task/z', me.id)).acquired).toBe(false);
  });

  describe('never judges a connection it cannot see', () => {
    let admin: mysql.Connection;
    const limited = `baton_np_${RUN}`;
    beforeAll(async () => {
      admin = await mysql.createConnection({ host: '127.0.0.1', user: 'root', database: 'test' });
      await admin.query(`CREATE USER IF NOT EXISTS '${limited}'@'127.0.0.1'`);
      await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON test.* TO '${limited}'@'127.0.0.1'`);
    });
    afterAll(async () => {
      await admin.query(`DROP USER IF EXISTS '${limited}'@'127.0.0.1'`);
      await admin.end();
    });

    it('keeps a live session bound to a connection id from another server run', async () => {
      const cluster = `boot-${RUN}`;
      const a = await open(cluster);
      const b = await open(cluster);
      const s1 = await a.openSession(nodeInfo('n1'), TTL);
      expect((await a.tryAcquire('k', s1.id)).acquired).toBe(true);
      // As if the server had restarted since the session bound itself: the old id means nothing now.
      await admin.query(`UPDATE baton_sessions SET conn_id = 4000000000, server_boot = server_boot - 3600 WHERE cluster = ? AND id = ?`, [
        Buffer.from(cluster),
        Buffer.from(s1.id),
      ]);
      const s2 = await b.openSession(nodeInfo('n2'), TTL);
      expect((await b.tryAcquire('k', s2.id)).acquired).toBe(false);
      // The same vanished id on this server run is a crash.
      await admin.query(`UPDATE baton_sessions SET server_boot = server_boot + 3600 WHERE cluster = ? AND id = ?`, [
        Buffer.from(cluster),
        Buffer.from(s1.id),
      ]);
      expect((await b.tryAcquire('k', s2.id)).acquired).toBe(true);
      // The reaped session never comes back.
      expect(await a.renewSession(s1.id)).toBe(false);
      await expect(a.tryAcquire('other', s1.id)).rejects.toBeInstanceOf(SessionExpiredError);
    });

    it('without PROCESS, leaves sessions of other accounts to the TTL', async () => {
      const cluster = `noproc-${RUN}`;
      const root = await open(cluster);
      const weak = await open(cluster, URL.replace('root@', `${limited}@`));
      const s1 = await root.openSession(nodeInfo('root-node'), TTL);
      expect((await root.tryAcquire('k', s1.id)).acquired).toBe(true);
      const s2 = await weak.openSession(nodeInfo('weak-node'), TTL);
      // root's connection is invisible to the limited account; it must not look dead.
      expect((await weak.tryAcquire('k', s2.id)).acquired).toBe(false);
      expect((await weak.listSessions()).length).toBe(2);
    });
  });
});

describe('mysql store tokens', () => {
  it('keeps tokens growing when the counter lost its last commits (innodb_flush_log_at_trx_commit = 2, an OS crash)', async () => {
    // A private table set: the counter is rolled back below, which must not touch other tests' tokens.
    const prefix = `tok${RUN}_`;
    const store = await open(`tokens-${RUN}`, `${URL}?prefix=${prefix}`);
    const admin = await mysql.createConnection(URL);
    try {
      const { id } = await store.openSession(nodeInfo('tokens'), TTL);
      const first = await store.tryAcquire('lock/a', id);
      if (!first.acquired) throw new Error('not acquired');
      expect(await store.release('lock/a', first.token)).toBe(true);
      // What a crash that lost the last commits leaves behind: the counter below the last token issued.
      await admin.query(`UPDATE \`${prefix}meta\` SET value = 0 WHERE name = 'token_seq'`);
      const second = await store.tryAcquire('lock/a', id);
      if (!second.acquired) throw new Error('not acquired');
      expect(second.token).toBeGreaterThan(first.token);
      await store.closeSession(id);
    } finally {
      for (const table of ['meta', 'sessions', 'owners', 'records', 'changes']) await admin.query(`DROP TABLE IF EXISTS \`${prefix}${table}\``);
      await admin.end();
    }
  });
});

describe('mysql store connection cut', () => {
  it('rejects with StoreUnavailableError during a cut, reconnects, and tells watchers', async () => {
    const proxy = new TcpProxy('127.0.0.1', 3306);
    const port = await proxy.start();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const cluster = `cut-${RUN}`;
      const store = await openMysqlStore(`mysql://root@127.0.0.1:${port}/test?pollMs=20&queryTimeoutMs=2000`, { cluster });
      const other = await open(cluster);
      const changes: Change[] = [];
      const unwatch = store.watch((change) => changes.push(change));
      try {
        await store.put('before', 1);
        const mine = await store.openSession(nodeInfo('behind-proxy'), TTL);
        expect((await store.tryAcquire('held', mine.id)).acquired).toBe(true);
        proxy.cut();
        await wait(50);
        const during = await store.put('during', 1).catch((e: unknown) => e);
        expect(during).toBeInstanceOf(StoreUnavailableError);
        expect((during as Error).message).toMatch(/mysql store/);
        await expect(store.time()).rejects.toBeInstanceOf(StoreUnavailableError);
        changes.length = 0;
        proxy.restore();
        await until(async () => (await store.put('after', 2).then(() => true, () => false)), 10_000);
        expect((await other.get('after'))?.value).toBe(2);
        // The session was re-bound to the new connection on reconnection: its old id is gone, yet a peer
        // (which did not reap during the cut: nobody was watching there) must not take it for crashed.
        const peer = await other.openSession(nodeInfo('peer'), TTL);
        expect((await other.tryAcquire('held', peer.id)).acquired).toBe(false);
        expect(await store.renewSession(mine.id)).toBe(true);
        await until(async () => changes.some((c) => c.scope === 'any'), 2000);
        // Watching still works after the reconnection.
        changes.length = 0;
        const s = await other.openSession(nodeInfo('n'), TTL);
        await until(async () => changes.some((c) => c.scope === 'sessions'), 2000);
        await other.closeSession(s.id);
      } finally {
        unwatch();
        await store.close();
      }
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await proxy.close();
    }
  });

  it('closes cleanly while the server is unreachable', async () => {
    const proxy = new TcpProxy('127.0.0.1', 3306);
    const port = await proxy.start();
    try {
      const store = await openMysqlStore(`mysql://root@127.0.0.1:${port}/test?pollMs=20`, { cluster: `cut2-${RUN}` });
      store.watch(() => undefined);
      proxy.cut();
      await wait(200);
      await store.close();
      await expect(store.time()).rejects.toMatchObject({ code: 'CLOSED' });
    } finally {
      await proxy.close();
    }
  });
});
