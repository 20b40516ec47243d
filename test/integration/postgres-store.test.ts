/**
 * PostgreSQL-specific behaviour: URL validation, crash failover through the backend pid (a SIGKILLed owner
 * loses its key long before its TTL), and outages (a cut connection never crashes the process, calls fail
 * with StoreUnavailableError during the cut, and the handle and its watchers recover by themselves).
 *
 * The crash test spawns a child that uses the BUILT code: run `npm run build` first (as `npm test` does).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError, StoreUrlError } from '../../src/core/errors.js';
import { randomId } from '../../src/core/ids.js';
import type { Change, Store } from '../../src/stores/contract.js';
import { openPostgresStore } from '../../src/stores/postgres/index.js';
import { parsePostgresUrl } from '../../src/stores/postgres/url.js';
import { nodeInfo } from '../conformance/store-conformance.js';
import { dropPostgresClusters, startPrivatePostgres } from '../helpers/postgres.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const URL_BASE = process.env.BATON_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const RUN = randomId(4);
const TTL = 60_000;
const opened: Store[] = [];
const clusters = new Set<string>();

afterAll(async () => {
  for (const store of opened) await store.close();
  await dropPostgresClusters(URL_BASE, [...clusters]);
});

async function open(cluster: string, url = URL_BASE): Promise<Store> {
  clusters.add(cluster);
  const store = await openPostgresStore(url, { cluster });
  opened.push(store);
  return store;
}

/** A TCP port nobody listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  return typeof address === 'object' && address ? address.port : 0;
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Repeats `fn` until it returns true or `ms` passes; answers how long it took. */
async function until(ms: number, fn: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await fn().catch(() => false)) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`condition not met within ${ms} ms`);
    await wait(20);
  }
}

describe('postgres store URL', () => {
  const bad: [string, RegExp][] = [
    ['postgres://u:s3cret@127.0.0.1/test?sslmode=prefer', /sslmode must be one of .*no silent plain-text fallback/],
    ['postgres://u:s3cret@127.0.0.1/test?sslmdoe=require', /unknown option "sslmdoe"/],
    ['postgres://u:s3cret@127.0.0.1/test?schema=Bad-Name', /schema must be a lower-case SQL identifier/],
    ['postgres://u:s3cret@127.0.0.1/test?connectTimeoutMs=5', /connectTimeoutMs must be an integer from 100/],
    ['postgres://u:s3cret@127.0.0.1/test?crashDetection=yes', /crashDetection must be true or false/],
    ['postgres://u:s3cret@127.0.0.1/test?sslmode=verify-ca', /verify-ca needs sslrootcert/],
    ['postgres://u:s3cret@127.0.0.1/test?sslrootcert=/nonexistent.pem', /sslrootcert needs sslmode=require/],
    ['postgres://u:s3cret@127.0.0.1/test?sslmode=require&sslrootcert=/nonexistent.pem', /sslrootcert: cannot read/],
    ['postgres://u:s3cret@127.0.0.1/test?sslmode=require&sslcert=/etc/hostname', /sslcert and sslkey must be given together/],
    ['postgres://u:s3cret@127.0.0.1/test?reapMs=1&reapMs=2', /"reapMs" is given more than once/],
    ['postgres://u:s3cret@h1,h1:5432/test', /host h1:5432 is named twice/],
    ['postgres://u:s3cret@h1,h2/test?target_session_attrs=any', /target_session_attrs must be one of read-write, primary, got "any"/],
    ['postgres://u:s3cret@127.0.0.1:99999/test', /not a valid URL|invalid port/],
    ['mysql://u:s3cret@127.0.0.1/test', /scheme must be "postgres:"/],
  ];
  it.each(bad)('refuses %s, naming the problem and never the password', async (url, message) => {
    const error = await openPostgresStore(url, { cluster: 'c' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUrlError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain('s3cret');
    expect((error as Error).message).toContain('u:***@');
  });

  it('parses options and TLS modes', () => {
    const config = parsePostgresUrl('postgresql://alice:p%40ss@db.example:6543/prod?schema=jobs&sslmode=require&queryTimeoutMs=2000&crashDetection=false');
    expect(config).toMatchObject({
      hosts: [{ host: 'db.example', port: 6543 }],
      user: 'alice',
      password: 'p@ss',
      database: 'prod',
      tls: { verify: 'none' },
      options: { schema: 'jobs', queryTimeoutMs: 2000, crashDetection: false },
    });
    expect(config.shown).not.toContain('p%40ss');
    expect(parsePostgresUrl('postgres://h/db?sslmode=verify-full').tls).toEqual({ verify: 'full' });
    expect(parsePostgresUrl('postgres://h').tls).toBeUndefined();
  });

  it('takes several hosts, in order, with target_session_attrs (read-write by default)', () => {
    const config = parsePostgresUrl('postgres://u@h1:5433,h2,[::1]:5435/db?target_session_attrs=primary');
    expect(config.hosts).toEqual([
      { host: 'h1', port: 5433 },
      { host: 'h2', port: 5432 },
      { host: '::1', port: 5435 },
    ]);
    expect(config.options.target_session_attrs).toBe('primary');
    expect(parsePostgresUrl('postgres://h1,h2/db').options.target_session_attrs).toBe('read-write');
  });

  it('rejects a list of hosts none of which accepts writes, naming each host and why', async () => {
    const error = await openPostgresStore('postgres://u:s3cret@127.0.0.1:1,127.0.0.1:2/test?connectTimeoutMs=500', { cluster: 'c' }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toMatch(/cannot connect: 127\.0\.0\.1:1: .*; 127\.0\.0\.1:2: /);
    expect((error as Error).message).not.toContain('s3cret');
  });

  it('rejects an unreachable server with StoreUnavailableError', async () => {
    const error = await openPostgresStore('postgres://u:s3cret@127.0.0.1:1/test?connectTimeoutMs=500', { cluster: 'c' }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).not.toContain('s3cret');
  });
});

/**
 * A process (the built code) that opens a session in `cluster` and holds `task/x`, for tests that
 * SIGKILL it; resolves once it holds the key.
 */
async function spawnOwner(cluster: string): Promise<ChildProcess> {
  const script = `
    import { openPostgresStore } from './dist/stores/postgres/index.js';
    const store = await openPostgresStore(${JSON.stringify(URL_BASE)}, { cluster: ${JSON.stringify(cluster)} });
    const info = { id: 'victim', host: 'h', pid: process.pid, version: 't', labels: {}, startedAt: 0, process: { host: 'h', pid: process.pid }, tasks: {} };
    const { id } = await store.openSession(info, ${TTL});
    const r = await store.tryAcquire('task/x', id);
    console.log(JSON.stringify({ acquired: r.acquired }));
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  expect(JSON.parse(line)).toEqual({ acquired: true });
  return child;
}

describe('postgres crash detection', () => {
  it('frees the keys of a SIGKILLed process long before its TTL, and tells watchers', async () => {
    const cluster = `crash-${RUN}`;
    const child = await spawnOwner(cluster);
    try {
      const store = await open(cluster);
      const watcher = await open(cluster);
      const me = await store.openSession(nodeInfo('survivor'), TTL);
      expect((await store.tryAcquire('task/x', me.id)).acquired).toBe(false); // the owner is alive
      expect((await store.listSessions()).map((s) => s.info.id).sort()).toEqual(['survivor', 'victim']);

      const changes: Change[] = [];
      watcher.watch((c) => changes.push(c));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
      // The backend exits as soon as it reads EOF: a few ms. Well under a second, against a 60 s TTL.
      const tookMs = await until(2000, async () => (await store.tryAcquire('task/x', me.id)).acquired);
      expect(tookMs).toBeLessThan(1000);
      expect((await store.listSessions()).map((s) => s.info.id)).toEqual(['survivor']);
      await until(2000, async () => changes.some((c) => c.scope === 'sessions'));
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('tells watchers of a SIGKILLed owner when its backend ends, not at the next reap round', async () => {
    const cluster = `crashwatch-${RUN}`;
    const child = await spawnOwner(cluster);
    try {
      // A reap round a minute away: only the crash watch can announce the death within the test.
      const watcher = await open(cluster, `${URL_BASE}?reapMs=60000`);
      await watcher.openSession(nodeInfo('standby'), TTL);
      const changes: Change[] = [];
      watcher.watch((c) => changes.push(c));
      await wait(300); // the watch is waiting on the victim's backend
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
      await until(10_000, async () => changes.some((c) => c.scope === 'owners'));
      expect(await watcher.holder('task/x')).toBeNull();
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('keeps a crashed session out when crash detection is off only until its TTL', async () => {
    const cluster = `nocrash-${RUN}`;
    const a = await open(cluster, `${URL_BASE}?crashDetection=false`);
    const b = await open(cluster);
    const s = await a.openSession(nodeInfo('a'), 1500);
    expect((await a.tryAcquire('k', s.id)).acquired).toBe(true);
    await a.close(); // its connection is gone, but the session is not bound to it
    const mine = await b.openSession(nodeInfo('b'), TTL);
    expect((await b.tryAcquire('k', mine.id)).acquired).toBe(false);
    await until(3000, async () => (await b.tryAcquire('k', mine.id)).acquired);
  });
});

describe('postgres tokens', () => {
  it('takes a fresh token after waiting for the key: greater than that of a holder who took it meanwhile', async () => {
    const cluster = `tokens-${RUN}`;
    const store = await open(cluster);
    const { id: dead } = await store.openSession(nodeInfo('dead'), TTL);
    expect((await store.tryAcquire('k', dead)).acquired).toBe(true);
    const { id: mine } = await store.openSession(nodeInfo('taker'), TTL);
    const sql = new pg.Client({ connectionString: URL_BASE });
    await sql.connect();
    try {
      await sql.query(`UPDATE baton.sessions SET expires_at = now() - interval '1 second' WHERE cluster = $1 AND id = $2`, [cluster, dead]);
      // The session of a holder to come, already dead (expired, but its row still there).
      await sql.query(
        `INSERT INTO baton.sessions (cluster, id, info, ttl_ms, opened_at, renewed_at, expires_at)
         VALUES ($1, 'ghost', '{}', 1000, now(), now(), now() - interval '1 second')`,
        [cluster],
      );
      // Another transaction holds the key's row: our acquisition draws its first token, then waits.
      await sql.query('BEGIN');
      await sql.query('SELECT 1 FROM baton.owners WHERE cluster = $1 AND key = $2 FOR UPDATE', [cluster, 'k']);
      const taking = store.tryAcquire('k', mine);
      await until(5000, async () => {
        const { rows } = await sql.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO%owners%'`);
        return rows[0].n > 0;
      });
      // Meanwhile that holder takes the key with a greater token.
      const { rows } = await sql.query(
        `UPDATE baton.owners SET session_id = 'ghost', token = nextval('baton.token_seq'), acquired_at = clock_timestamp()
         WHERE cluster = $1 AND key = $2 RETURNING token`,
        [cluster, 'k'],
      );
      await sql.query('COMMIT');
      const result = await taking;
      expect(result.acquired).toBe(true);
      expect((result as { token: bigint }).token).toBeGreaterThan(BigInt(rows[0].token as string));
    } finally {
      await sql.end();
    }
  });
});

describe('postgres outages', () => {
  it('survives a cut connection: StoreUnavailableError during the cut, recovery and an "any" hint after', async () => {
    const target = new URL(URL_BASE);
    const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
    const port = await proxy.start();
    const via = new URL(URL_BASE);
    via.port = String(port);
    via.searchParams.set('connectTimeoutMs', '500');
    via.searchParams.set('queryTimeoutMs', '1000');
    const cluster = `cut-${RUN}`;
    try {
      const store = await open(cluster, via.toString());
      const other = await open(cluster); // direct, unaffected by the cut
      const changes: Change[] = [];
      store.watch((c) => changes.push(c));
      const s = await store.openSession(nodeInfo('n1'), TTL);
      expect((await store.tryAcquire('k', s.id)).acquired).toBe(true);

      proxy.cut();
      await expect(store.put('rec', 1)).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.time()).rejects.toThrow(/not connected|Connection terminated|cannot connect/);
      await wait(300); // reconnect attempts fail while the proxy refuses: none may escape as an error

      // The session was bound to the cut connection: to the server it is as dead as a crashed owner.
      const s2 = await other.openSession(nodeInfo('n2'), TTL);
      expect((await other.tryAcquire('k', s2.id)).acquired).toBe(true);

      changes.length = 0;
      proxy.restore();
      await until(5000, async () => (await store.put('rec', 2)).ok);
      await until(2000, async () => changes.some((c) => c.scope === 'any'));
      // Once dead, always dead: the old session does not come back on the new connection.
      expect(await store.renewSession(s.id)).toBe(false);
      // Watchers work again on the new listening connection.
      changes.length = 0;
      await other.put('rec', 3);
      await until(2000, async () => changes.some((c) => c.scope === 'records' && c.key === 'rec'));
    } finally {
      await proxy.close();
    }
  });

  it('survives a server restart: sessions are judged by TTL, not by their dead connections; tokens keep growing', async (ctx) => {
    const server = startPrivatePostgres(await freePort());
    if (!server) return ctx.skip(); // no PostgreSQL binaries here to run a private server
    try {
      const url = `${server.url}?connectTimeoutMs=500&queryTimeoutMs=2000`;
      const a = await openPostgresStore(url, { cluster: 'restart' });
      const b = await openPostgresStore(url, { cluster: 'restart' });
      opened.push(a, b);
      const changes: Change[] = [];
      b.watch((c) => changes.push(c));
      const s = await a.openSession(nodeInfo('a'), 20_000);
      const first = await a.tryAcquire('k', s.id);
      if (!first.acquired) throw new Error('expected to acquire');

      server.restart();
      await expect(a.time()).rejects.toBeInstanceOf(StoreUnavailableError);
      await until(10_000, () => a.renewSession(s.id)); // alive by TTL: the restart killed every connection
      await until(5000, async () => changes.some((c) => c.scope === 'any'));
      await until(5000, async () => (await b.holder('k'))?.token === first.token); // b reconnected, a still holds k
      expect(await a.release('k', first.token)).toBe(true);
      const again = await a.tryAcquire('k', s.id);
      expect(again.acquired && again.token > first.token).toBe(true);
    } finally {
      server.stop();
    }
  });

  it('after a crash that lost acquisitions committed asynchronously, every new token exceeds every token issued before', async (ctx) => {
    // A WAL writer that sleeps long: the last acquisitions' commits stay in the server's memory, and
    // the immediate stop loses them (with their sequence values) — the case the token bump is for.
    const server = startPrivatePostgres(await freePort(), { wal_writer_delay: '10s', wal_writer_flush_after: '1GB' });
    if (!server) return ctx.skip();
    try {
      const url = `${server.url}?connectTimeoutMs=500&queryTimeoutMs=2000`;
      const a = await openPostgresStore(url, { cluster: 'crash' });
      opened.push(a);
      const s = await a.openSession(nodeInfo('a'), 20_000);
      let highest = 0n;
      for (let i = 0; i < 50; i++) {
        const r = await a.tryAcquire(`k${i}`, s.id);
        if (!r.acquired) throw new Error('expected to acquire');
        if (r.token > highest) highest = r.token;
      }
      server.crash();
      const b = await openPostgresStore(url, { cluster: 'crash' });
      opened.push(b);
      const lost = (await b.listHolders('k')).length < 50;
      const s2 = await b.openSession(nodeInfo('b'), 20_000);
      await until(10_000, async () => (await a.time()) > 0); // a's handle reconnected (and bumped) too
      for (const store of [a, b]) {
        const session = store === a ? (await a.openSession(nodeInfo('a2'), 20_000)).id : s2.id;
        const r = await store.tryAcquire(`fresh-${session}`, session);
        expect(r.acquired && r.token > highest).toBe(true);
      }
      // A run where the crash lost nothing proves less: say which it was.
      console.log(`postgres crash test: the crash lost ${lost ? 'some' : 'no'} acquisitions`);
    } finally {
      server.stop();
    }
  });

  it('rejects calls after close with a typed error and closes twice harmlessly', async () => {
    const store = await openPostgresStore(URL_BASE, { cluster: `closed-${RUN}` });
    await store.close();
    await store.close();
    await expect(store.time()).rejects.toMatchObject({ code: 'CLOSED' });
  });
});
