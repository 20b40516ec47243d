/**
 * ZooKeeper-specific behaviour: URL validation, same-host crash failover (a SIGKILLed child built from
 * dist/ — run `npm run build` first), outages through a TCP proxy (fail fast, reconnect, new ZK session
 * after expiry), digest authentication and key encoding. Needs the server at 127.0.0.1:2181.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError, StoreUrlError } from '../../src/core/errors.js';
import { randomId } from '../../src/core/ids.js';
import type { Change, Store } from '../../src/stores/contract.js';
import { openZookeeperStore, parseZookeeperUrl } from '../../src/stores/zookeeper/index.js';
import { nodeInfo } from '../conformance/store-conformance.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const CHROOT = '/baton-test';
const URL = `zk://127.0.0.1:2181${CHROOT}`;
const RUN = randomId(4);
const opened: Store[] = [];
let seq = 0;

async function open(url = URL, cluster = `zk-it-${RUN}-${++seq}`): Promise<Store> {
  const store = await openZookeeperStore(url, { cluster });
  opened.push(store);
  return store;
}

afterAll(async () => {
  for (const store of opened) await store.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Retries `fn` until it resolves (the handle reconnecting), failing after `timeoutMs`. */
async function eventually<T>(fn: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

describe('zookeeper store URL', () => {
  it('parses hosts, chroot, credentials and options', () => {
    expect(parseZookeeperUrl('zk://a:1,b/x/y?sessionTimeoutMs=5000&requestTimeoutMs=500')).toEqual({
      servers: 'a:1,b:2181',
      chroot: '/x/y',
      label: 'zk://a:1,b/x/y?sessionTimeoutMs=5000&requestTimeoutMs=500',
      sessionTimeoutMs: 5000,
      requestTimeoutMs: 500,
    });
    expect(parseZookeeperUrl('zk://127.0.0.1:2181').chroot).toBe('/baton');
    const withAuth = parseZookeeperUrl('zk://al%40ice:p%3Ass@h:2181/c');
    expect(withAuth.auth).toEqual({ user: 'al@ice', password: 'p:ss' });
    expect(withAuth.label).toBe('zk://al%40ice:***@h:2181/c');
  });

  it.each([
    ['zk:///chroot', /missing host|invalid host/],
    ['zk://h:99999/c', /invalid port/],
    ['zk://h:2181/a//b', /invalid chroot/],
    ['zk://h:2181/zookeeper/x', /reserved/],
    ['zk://h:2181/c?pollMs=5', /unknown option "pollMs"/],
    ['zk://h:2181/c?valueOf=1', /unknown option "valueOf"/], // an Object.prototype name (found by the fuzzer)
    ['zk://h:2181/c?sessionTimeoutMs=10', /sessionTimeoutMs" must be an integer from 1000/],
    ['zk://h:2181/c?sessionTimeoutMs=2000&requestTimeoutMs=2000', /must be below sessionTimeoutMs/],
    ['zk://h:2181/c?tls=true', /TLS is not supported/],
    ['zk://h:2181/c?crashCheckMs=100&crashCheckMs=200', /given twice/],
    ['zk://user@h:2181/c', /needs both a user and a password/],
    ['redis://h:2181/c', /expected "zk:\/\//],
  ])('rejects %s', async (url, message) => {
    await expect(openZookeeperStore(url, { cluster: 'c' })).rejects.toThrow(StoreUrlError);
    await expect(openZookeeperStore(url, { cluster: 'c' })).rejects.toThrow(message);
  });

  it('never shows the password', async () => {
    const error = await openZookeeperStore('zk://u:hunter2@h:0/c', { cluster: 'c' }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(StoreUrlError);
    expect(String((error as Error).message)).not.toContain('hunter2');
    expect(String((error as Error).message)).toContain('u:***@');
  });

  it('fails to open with StoreUnavailableError when no server answers', async () => {
    const started = Date.now();
    await expect(openZookeeperStore('zk://127.0.0.1:1/c?connectTimeoutMs=500', { cluster: 'c' })).rejects.toThrow(StoreUnavailableError);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});

describe('zookeeper store keys and records', () => {
  it('keeps keys with slashes, dots, percent signs, unicode and the empty key apart, in key order', async () => {
    const store = await open();
    const keys = ['', '.', '..', 'a/b', 'a%2Fb', 'a.b', 'é/ü', 'z'];
    for (const key of keys) expect((await store.put(key, { key })).ok).toBe(true);
    const listed = await store.list('');
    expect(listed.map((r) => r.key)).toEqual([...keys].sort());
    expect(listed.every((r) => (r.value as { key: string }).key === r.key)).toBe(true);
    const s = await store.openSession(nodeInfo('n'), 5000);
    expect((await store.tryAcquire('a/b', s.id)).acquired).toBe(true);
    expect((await store.tryAcquire('..', s.id)).acquired).toBe(true);
    expect((await store.listHolders('')).map((h) => h.key)).toEqual(['..', 'a/b']);
  });

  it('refuses versions that can never exist (ZooKeeper reads -1 as "any version")', async () => {
    const store = await open();
    expect(await store.put('v', 1)).toEqual({ ok: true, version: 1 });
    expect(await store.put('v', 2, { ifVersion: -1 })).toEqual({ ok: false, reason: 'version' });
    expect(await store.put('v', 2, { ifVersion: 0 })).toEqual({ ok: false, reason: 'version' });
    expect(await store.delete('v', { ifVersion: -1 })).toBe(false);
    expect((await store.get('v'))?.version).toBe(1);
  });

  it('a renewal that arrives after the TTL is void and removes the session', async () => {
    const store = await open();
    const s = await store.openSession(nodeInfo('n'), 1000);
    await sleep(1100);
    expect(await store.renewSession(s.id)).toBe(false);
    expect(await store.listSessions()).toEqual([]);
    expect(await store.renewSession(s.id)).toBe(false);
  });
});

describe('zookeeper store crash detection', () => {
  it('frees the keys of a SIGKILLed process on this host long before its TTL, and tells watchers', async () => {
    const cluster = `zk-crash-${RUN}`;
    const TTL = 60_000;
    const script = `
      import { openZookeeperStore } from './dist/stores/zookeeper/index.js';
      import { currentProcessIdentity } from './dist/core/process-identity.js';
      const store = await openZookeeperStore(${JSON.stringify(URL)}, { cluster: ${JSON.stringify(cluster)} });
      const info = { id: 'victim', host: 'h', pid: process.pid, version: 't', labels: {}, startedAt: 0, process: currentProcessIdentity(), tasks: {} };
      const { id } = await store.openSession(info, ${TTL});
      const r = await store.tryAcquire('task/x', id);
      console.log(JSON.stringify({ acquired: r.acquired }));
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout }).once('line', resolve));
      expect(JSON.parse(line)).toEqual({ acquired: true });

      const watcher = await open(URL, cluster);
      const store = await open(URL, cluster);
      const me = await store.openSession(nodeInfo('survivor'), TTL);
      expect((await store.tryAcquire('task/x', me.id)).acquired).toBe(false); // the owner is alive

      const seen: Change[] = [];
      watcher.watch((change) => seen.push(change));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      const killedAt = Date.now();
      child.kill('SIGKILL');
      await exited;
      // The background check of the watching handle removes the dead session and the watch fires.
      await eventually(async () => {
        if (!seen.some((c) => c.scope === 'sessions')) throw new Error('no sessions hint yet');
      }, 5000);
      expect((await store.listSessions()).map((s) => s.info.id)).toEqual(['survivor']);
      const r = await store.tryAcquire('task/x', me.id);
      expect(r.acquired).toBe(true);
      expect(Date.now() - killedAt).toBeLessThan(3000);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('takes over from a dead process at tryAcquire even without a watcher', async () => {
    const cluster = `zk-crash2-${RUN}`;
    const a = await open(URL, cluster);
    const b = await open(URL, cluster);
    const ghost = { ...nodeInfo('ghost'), process: { ...nodeInfo('ghost').process, startTicks: '1' } };
    const dead = await a.openSession(ghost, 60_000);
    expect((await a.tryAcquire('k', dead.id)).acquired).toBe(true);
    const me = await b.openSession(nodeInfo('me'), 60_000);
    const r = await b.tryAcquire('k', me.id);
    expect(r.acquired).toBe(true);
    expect(await a.renewSession(dead.id)).toBe(false); // removed for good
  });
});

describe('zookeeper store outages', () => {
  it('fails fast while cut off, reconnects by itself, keeps its session and watches', async () => {
    const proxy = new TcpProxy('127.0.0.1', 2181);
    const port = await proxy.start();
    const cluster = `zk-cut-${RUN}`;
    try {
      const store = await open(`zk://127.0.0.1:${port}${CHROOT}?requestTimeoutMs=1000`, cluster);
      const other = await open(URL, cluster);
      const s = await store.openSession(nodeInfo('n'), 20_000);
      const seen: Change[] = [];
      store.watch((change) => seen.push(change));

      proxy.cut();
      await sleep(100);
      const started = Date.now();
      await expect(store.renewSession(s.id)).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.get('x')).rejects.toThrow(/not connected/);
      expect(Date.now() - started).toBeLessThan(1500);

      proxy.restore();
      expect(await eventually(() => store.renewSession(s.id))).toBe(true); // same ZK session, same baton session
      await eventually(async () => {
        if (!seen.some((c) => c.scope === 'any')) throw new Error('no reconnect hint yet');
      });
      seen.length = 0;
      await other.put('after', 1);
      await eventually(async () => {
        if (!seen.some((c) => c.scope === 'records')) throw new Error('watch not restored');
      }, 2000);
    } finally {
      await proxy.close();
    }
  });

  it('starts a new ZooKeeper session after the old one expired; its ephemeral sessions are gone', async () => {
    const proxy = new TcpProxy('127.0.0.1', 2181);
    const port = await proxy.start();
    const cluster = `zk-expire-${RUN}`;
    try {
      const store = await open(`zk://127.0.0.1:${port}${CHROOT}?sessionTimeoutMs=1500&requestTimeoutMs=500`, cluster);
      const other = await open(URL, cluster);
      const s = await store.openSession(nodeInfo('n'), 1500); // ephemeral: TTL fits the ZK session timeout
      const seen: Change[] = [];
      store.watch((change) => seen.push(change));
      proxy.cut();
      await sleep(3000); // past the ZK session timeout: the server expires the session
      proxy.restore();
      await eventually(() => store.time());
      expect(await store.renewSession(s.id)).toBe(false);
      const s2 = await store.openSession(nodeInfo('n'), 1500);
      expect((await other.listSessions()).map((x) => x.id)).toEqual([s2.id]);
      seen.length = 0;
      await other.put('after', 1);
      await eventually(async () => {
        if (!seen.some((c) => c.scope === 'records')) throw new Error('watch not re-armed on the new client');
      }, 2000);
    } finally {
      await proxy.close();
    }
  });

  it('closes promptly while the server is unreachable', async () => {
    const proxy = new TcpProxy('127.0.0.1', 2181);
    const port = await proxy.start();
    try {
      const store = await openZookeeperStore(`zk://127.0.0.1:${port}${CHROOT}`, { cluster: `zk-close-${RUN}` });
      proxy.cut();
      await sleep(100);
      const started = Date.now();
      await store.close();
      expect(Date.now() - started).toBeLessThan(2500);
    } finally {
      await proxy.close();
    }
  });
});

describe('zookeeper store digest authentication', () => {
  it('creates nodes only its user can use', async () => {
    const chroot = `/baton-auth-${RUN}`;
    const owner = await open(`zk://alice:secret@127.0.0.1:2181${chroot}`, 'c');
    expect((await owner.put('k', 1)).ok).toBe(true);
    expect((await owner.get('k'))?.value).toBe(1);
    await expect(openZookeeperStore(`zk://127.0.0.1:2181${chroot}`, { cluster: 'c' })).rejects.toThrow(/not authorized/);
    await expect(openZookeeperStore(`zk://mallory:guess@127.0.0.1:2181${chroot}`, { cluster: 'c' })).rejects.toThrow(StoreUnavailableError);
  });
});
