/**
 * Redis-specific behaviour: URL validation, crash failover before the TTL (a SIGKILLed child process
 * that used the BUILT code in dist/ — run `npm run build` first), and outages: a killed connection and a
 * server that dies and comes back empty (our own redis-server on a free port, never the shared one).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError, StoreUrlError } from '../../src/core/errors.js';
import { randomId } from '../../src/core/ids.js';
import type { Change, Store } from '../../src/stores/contract.js';
import { openRedisStore } from '../../src/stores/redis/index.js';
import { parseRedisUrl } from '../../src/stores/redis/url.js';
import { nodeInfo } from '../conformance/store-conformance.js';

const SHARED = process.env.BATON_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const PREFIX = `baton-it-${randomId(4)}`;
const TTL = 60_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      if (Date.now() > until) throw error;
    }
    if (Date.now() > until) throw new Error(`eventually: not within ${timeoutMs}ms`);
    await sleep(50);
  }
}

afterAll(async () => {
  // Our keys on the shared server: everything under this run's prefix (SCAN is fine in a test).
  const admin = new Redis(SHARED);
  const stream = admin.scanStream({ match: `{${PREFIX}:*`, count: 500 });
  for await (const keys of stream) if ((keys as string[]).length > 0) await admin.del(...(keys as string[]));
  await admin.quit();
});

describe('Redis store URL', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-redis-url-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('parses host, port, database, credentials, TLS files and options', () => {
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\n');
    const config = parseRedisUrl(`rediss://app:s%40cret@redis.example:6380/2?prefix=p1&tlsCa=${ca}&tlsServername=r.example&commandTimeoutMs=500`);
    expect(config).toMatchObject({
      host: 'redis.example',
      port: 6380,
      db: 2,
      username: 'app',
      password: 's@cret',
      prefix: 'p1',
      commandTimeoutMs: 500,
      tls: { ca: '-----BEGIN CERTIFICATE-----\n', servername: 'r.example' },
    });
    expect(config.shown).not.toContain('cret');
    expect(parseRedisUrl('redis://localhost')).toMatchObject({ host: 'localhost', port: 6379, db: 0, prefix: 'baton' });
    expect(parseRedisUrl('redis://localhost').tls).toBeUndefined();
    expect(parseRedisUrl('redis://:pw@[::1]:7000/').password).toBe('pw');
  });

  it('parses a redis+sentinel URL: the Sentinels in order, the master name, then the usual parts', () => {
    const config = parseRedisUrl('redis+sentinel://:s%40cret@s1:26380,s2,[::1]:26381/my-master/3?prefix=p1');
    expect(config.sentinel).toEqual({
      name: 'my-master',
      hosts: [
        { host: 's1', port: 26380 },
        { host: 's2', port: 26379 },
        { host: '::1', port: 26381 },
      ],
    });
    expect(config).toMatchObject({ host: 's1', port: 26380, db: 3, password: 's@cret', prefix: 'p1' });
    expect(config.shown).not.toContain('cret');
    expect(parseRedisUrl('redis+sentinel://s1/m')).toMatchObject({ db: 0, sentinel: { name: 'm', hosts: [{ host: 's1', port: 26379 }] } });
    expect(parseRedisUrl('redis://localhost').sentinel).toBeUndefined();
  });

  it.each([
    ['http://localhost', /unsupported scheme "http:"/],
    ['redis://', /missing host/],
    ['redis://localhost/db1', /database "db1" must be a number/],
    ['redis://localhost/0?pollMs=5', /unknown option "pollMs" \(known: prefix/],
    ['redis://localhost/0?tlsCa=/x.pem', /option "tlsCa" needs TLS: use "rediss:\/\/"/],
    ['rediss://localhost/0?tlsCert=/x.pem', /"tlsCert" and "tlsKey" go together/],
    ['rediss://localhost/0?tlsCa=/nonexistent/ca.pem', /tlsCa: cannot read "\/nonexistent\/ca.pem": ENOENT/],
    ['redis://localhost/0?prefix=a{b}', /prefix "a\{b\}" may hold/],
    ['redis://localhost/0?commandTimeoutMs=fast', /commandTimeoutMs must be an integer from 50 to 60000, got "fast"/],
    ['redis://localhost/0?prefix=a&prefix=b', /option "prefix" is given twice/],
    ['redis://localhost/0?crashDetection=pid', /crashDetection must be "process" or "connection", got "pid"/],
    ['redis+sentinel://s1:26379', /missing master name/],
    ['redis+sentinel:///m', /missing Sentinel host/],
    ['redis+sentinel://s1:99999/m', /Sentinel port "99999" is out of range/],
    ['redis+sentinel://s 1/m', /invalid Sentinel host "s 1"/],
    ['redis+sentinel://s1/m/x', /database "x" must be a number/],
    ['redis+sentinel://s1/m?tlsCa=/x.pem', /TLS is not supported with "redis\+sentinel:\/\/"/],
    ['redis+sentinel://s1/m?nope=1', /unknown option "nope"/],
  ])('rejects %s', (url, message) => {
    expect(() => parseRedisUrl(url)).toThrow(StoreUrlError);
    expect(() => parseRedisUrl(url)).toThrow(message);
  });

  it('never shows the password in an error', async () => {
    const error = await openRedisStore('redis://user:hunter2@localhost:6379/x', { cluster: 'c' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUrlError);
    expect((error as Error).message).toContain('redis://user:***@localhost:6379/x');
    expect((error as Error).message).not.toContain('hunter2');
  });

  it('fails fast with StoreUnavailableError when nothing listens', async () => {
    const port = await freePort();
    const started = Date.now();
    const error = await openRedisStore(`redis://127.0.0.1:${port}/0`, { cluster: 'c' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toMatch(/redis store \(redis:\/\/127\.0\.0\.1:\d+\/0\): cannot connect/);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});

describe('Redis crash detection', () => {
  const url = `${SHARED}?prefix=${PREFIX}&crashCheckMs=50`;
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill('SIGKILL');
  });

  /** A node in another process, built code: opens a session with a long TTL, takes `task/x`, reports. */
  async function startVictim(cluster: string): Promise<{ clientId: string; token: string }> {
    if (!existsSync('dist/stores/redis/index.js')) throw new Error('run `npm run build` first: dist/stores/redis is missing');
    const script = `
      import { openRedisStore } from './dist/stores/redis/index.js';
      import { currentProcessIdentity } from './dist/core/process-identity.js';
      const store = await openRedisStore(${JSON.stringify(url)}, { cluster: ${JSON.stringify(cluster)} });
      const info = { id: 'victim', host: 'h', pid: process.pid, version: 't', labels: {}, startedAt: 0, process: currentProcessIdentity(), tasks: {} };
      const { id } = await store.openSession(info, ${TTL});
      const r = await store.tryAcquire('task/x', id);
      console.log(JSON.stringify({ acquired: r.acquired, token: String(r.token) }));
      setInterval(() => store.renewSession(id).catch(() => {}), 1000);
    `;
    child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: (child as ChildProcess).stdout! }).once('line', resolve);
      (child as ChildProcess).once('exit', (code) => reject(new Error(`victim exited with ${code}`)));
    });
    const report = JSON.parse(line) as { acquired: boolean; token: string };
    expect(report.acquired).toBe(true);
    const admin = new Redis(SHARED);
    const clientId = await admin.hget(`{${PREFIX}:${cluster}}:s:${await victimSession(admin, cluster)}`, 'client');
    await admin.quit();
    return { clientId: clientId as string, token: report.token };
  }

  async function victimSession(admin: Redis, cluster: string): Promise<string> {
    const [id] = await admin.zrange(`{${PREFIX}:${cluster}}:sessions`, '0', '-1');
    return id as string;
  }

  async function killVictim(): Promise<void> {
    const exited = new Promise((resolve) => child?.once('exit', resolve));
    child?.kill('SIGKILL');
    await exited;
    child = undefined;
  }

  it('keeps the key of a live owner whose connection was killed, frees it at once when the owner dies', async () => {
    const cluster = `crash-${randomId(4)}`;
    const victim = await startVictim(cluster);
    const store = await openRedisStore(url, { cluster });
    try {
      const me = await store.openSession(nodeInfo('survivor'), TTL);
      expect((await store.tryAcquire('task/x', me.id)).acquired).toBe(false);

      // The server sees the owner's connection gone, but the owner lives and acts until its own
      // deadline: reaping now would break invariant 4, so the key stays.
      const admin = new Redis(SHARED);
      await admin.call('CLIENT', 'KILL', 'ID', victim.clientId);
      await admin.quit();
      await sleep(200);
      expect((await store.tryAcquire('task/x', me.id)).acquired).toBe(false);

      const started = Date.now();
      await killVictim();
      const r = await store.tryAcquire('task/x', me.id);
      expect(r.acquired).toBe(true);
      if (r.acquired) expect(r.token > BigInt(victim.token)).toBe(true);
      expect(Date.now() - started).toBeLessThan(2000); // TTL is 60 s
      expect((await store.listSessions()).map((s) => s.info.id)).toEqual(['survivor']);
    } finally {
      await store.close();
    }
  });

  it('with crashDetection=connection, a vanished connection is enough, and its own handle hears of it', async () => {
    const cluster = `conn-${randomId(4)}`;
    const victim = await startVictim(cluster);
    const store = await openRedisStore(`${url}&crashDetection=connection`, { cluster });
    const admin = new Redis(SHARED);
    try {
      const me = await store.openSession(nodeInfo('survivor'), TTL);
      expect((await store.tryAcquire('task/x', me.id)).acquired).toBe(false);
      await admin.call('CLIENT', 'KILL', 'ID', victim.clientId);
      expect((await store.tryAcquire('task/x', me.id)).acquired).toBe(true); // the victim still runs

      // This handle's own connection drops: it tells its watchers (the session keeper gives up at once).
      const seen: Change[] = [];
      store.watch((c) => seen.push(c));
      const mine = await admin.hget(`{${PREFIX}:${cluster}}:s:${me.id}`, 'client');
      await admin.call('CLIENT', 'KILL', 'ID', mine as string);
      await eventually(async () => (seen.some((c) => c.scope === 'connection') ? true : undefined), 2000);
    } finally {
      await admin.quit();
      await store.close();
      await killVictim();
    }
  });

  it('reaps a dead owner in the background, so watchers hear of it without an acquisition', async () => {
    const cluster = `reap-${randomId(4)}`;
    await startVictim(cluster);
    const store = await openRedisStore(url, { cluster });
    try {
      const changes: Change[] = [];
      const unwatch = store.watch((c) => changes.push(c));
      await sleep(150);
      expect((await store.holder('task/x'))?.sessionId).toBeDefined();
      await killVictim();
      await eventually(async () => (changes.some((c) => c.scope === 'owners') ? true : undefined), 3000);
      expect(await store.holder('task/x')).toBeNull();
      expect(await store.listSessions()).toEqual([]);
      unwatch();
    } finally {
      await store.close();
    }
  });
});

describe('Redis outages', () => {
  let server: OwnServer;
  let url: string;
  const handles: Store[] = [];
  beforeAll(async () => {
    server = await OwnServer.start();
    url = `redis://127.0.0.1:${server.port}/0?commandTimeoutMs=500&connectTimeoutMs=500`;
  });
  afterAll(async () => {
    for (const handle of handles) await handle.close();
    await server.stop();
  });

  async function open(cluster: string): Promise<Store> {
    const handle = await openRedisStore(url, { cluster });
    handles.push(handle);
    return handle;
  }

  it('survives a killed connection: reconnects, and watchers get an "any" hint and later changes', async () => {
    const [a, b] = [await open('cut'), await open('cut')];
    const seen: Change[] = [];
    b.watch((c) => seen.push(c));
    const admin = new Redis(server.port, '127.0.0.1');
    await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await admin.quit();
    await eventually(async () => (seen.some((c) => c.scope === 'any') ? true : undefined));
    const s = await eventually(() => a.openSession(nodeInfo('n1'), 5000));
    await eventually(async () => (seen.some((c) => c.scope === 'sessions') ? true : undefined), 1000);
    expect(await a.renewSession(s.id)).toBe(true);
  });

  it('fails fast during a server outage, comes back by itself, and keeps tokens increasing after data loss', async () => {
    const [a, b] = [await open('down'), await open('down')];
    const seen: Change[] = [];
    b.watch((c) => seen.push(c));
    const s1 = await a.openSession(nodeInfo('n1'), 5000);
    const r1 = await a.tryAcquire('task/x', s1.id);
    if (!r1.acquired) throw new Error('expected to acquire');

    await server.kill();
    seen.length = 0;
    const started = Date.now();
    await expect(a.renewSession(s1.id)).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(b.get('x')).rejects.toThrow(/redis store \(redis:\/\/127\.0\.0\.1:\d+\/0\?.*\): (not connected|command failed)/);
    expect(Date.now() - started).toBeLessThan(1500);

    // The server comes back WITHOUT its data (no persistence): sessions are gone, tokens must still grow.
    await server.restart();
    expect(await eventually(() => a.renewSession(s1.id))).toBe(false);
    await eventually(async () => (seen.some((c) => c.scope === 'any') ? true : undefined));
    const s2 = await a.openSession(nodeInfo('n1'), 5000);
    const r2 = await a.tryAcquire('task/x', s2.id);
    expect(r2.acquired && r2.token > r1.token).toBe(true);
    const admin = new Redis(server.port, '127.0.0.1');
    expect(await admin.hget('{baton:down}:meta', 'resets')).toBe('1');
    await admin.quit();
    // Pub/sub works again across handles.
    seen.length = 0;
    await a.put('rec', 1);
    await eventually(async () => (seen.some((c) => c.scope === 'records' && c.key === 'rec') ? true : undefined), 1000);
  });

  it('closes promptly while the server is down', async () => {
    const handle = await openRedisStore(url, { cluster: 'closing' });
    handle.watch(() => undefined);
    await server.kill();
    const started = Date.now();
    await handle.close();
    expect(Date.now() - started).toBeLessThan(1000);
    await server.restart();
  });
});

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const address = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return typeof address === 'object' && address ? address.port : 0;
}

/** A throwaway redis-server without persistence, in a temp dir, that this test may kill. */
class OwnServer {
  #process: ChildProcess | undefined;
  readonly #dir = mkdtempSync(join(tmpdir(), 'baton-redis-'));
  private constructor(readonly port: number) {}

  static async start(): Promise<OwnServer> {
    const server = new OwnServer(await freePort());
    await server.restart();
    return server;
  }

  async restart(): Promise<void> {
    this.#process = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.#dir], {
      stdio: 'ignore',
    });
    await eventually(async () => {
      const probe = new Redis(this.port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        return (await probe.ping()) === 'PONG' ? true : undefined;
      } finally {
        probe.disconnect();
      }
    });
  }

  async kill(): Promise<void> {
    const process = this.#process;
    if (!process || process.exitCode !== null) return;
    const exited = new Promise((resolve) => process.once('exit', resolve));
    process.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
