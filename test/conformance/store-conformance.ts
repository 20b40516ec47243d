/**
 * The one conformance suite: every Store runs it unchanged. A store is done when it passes.
 * Time is the harness's: a FakeClock for stores that measure time locally, real waiting for servers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change, Store } from '../../src/stores/contract.js';
import { ConfigError, SessionExpiredError } from '../../src/core/errors.js';
import type { NodeInfo } from '../../src/core/node-info.js';
import { currentProcessIdentity } from '../../src/core/process-identity.js';
import { randomId } from '../../src/core/ids.js';

export interface StoreHarness {
  /** A new handle (connection) on the shared backing store, scoped to `cluster`. */
  open(cluster: string): Promise<Store>;
  /** Moves store time forward by `ms` (and lets timers such as pollers run). */
  advance(ms: number): Promise<void>;
  close(): Promise<void>;
}

let clusterSeq = 0;
const RUN = randomId(4);

export function nodeInfo(id: string): NodeInfo {
  return {
    id,
    host: 'test-host',
    pid: process.pid,
    version: 'test',
    labels: { zone: 'a' },
    startedAt: 0,
    process: currentProcessIdentity(),
    tasks: { 'task-a': { schedule: 'every 1s', mode: 'singleton' } },
  };
}

export function describeStoreConformance(name: string, makeHarness: () => Promise<StoreHarness>): void {
  describe(`Store conformance: ${name}`, () => {
    let harness: StoreHarness;
    const opened: Store[] = [];
    const TTL = 2000;

    beforeAll(async () => {
      harness = await makeHarness();
    });
    afterAll(async () => {
      for (const store of opened) await store.close();
      await harness.close();
    });

    /** Two handles on a fresh cluster: two nodes that share nothing but the store. */
    async function pair(): Promise<[Store, Store]> {
      // Random per run: server stores keep data between runs, and pids repeat.
      const cluster = `conf-${RUN}-${++clusterSeq}`;
      const a = await harness.open(cluster);
      const b = await harness.open(cluster);
      opened.push(a, b);
      return [a, b];
    }

    it('opens, lists and closes sessions with their node info', async () => {
      const [a, b] = await pair();
      const s1 = await a.openSession(nodeInfo('n1'), TTL);
      const s2 = await b.openSession(nodeInfo('n2'), TTL);
      const sessions = await b.listSessions();
      expect(sessions.map((s) => s.id).sort()).toEqual([s1.id, s2.id].sort());
      const one = sessions.find((s) => s.id === s1.id);
      expect(one?.info.id).toBe('n1');
      expect(one?.info.labels).toEqual({ zone: 'a' });
      expect(one?.ttlMs).toBe(TTL);
      expect(one?.expiresInMs).toBeGreaterThan(0);
      expect(one?.expiresInMs).toBeLessThanOrEqual(TTL);
      await a.closeSession(s1.id);
      expect((await b.listSessions()).map((s) => s.id)).toEqual([s2.id]);
      await a.closeSession(s1.id); // closing twice is harmless
    });

    it('replaces a live session\'s info (updateSessionInfo), never a dead one\'s', async () => {
      const [a, b] = await pair();
      // Optional in the contract for stores written elsewhere; every bundled store must offer it.
      if (!a.updateSessionInfo) throw new Error('this store has no updateSessionInfo (the agent\'s reload needs it)');
      const s = await a.openSession(nodeInfo('n1'), TTL);
      await a.tryAcquire('k', s.id);
      const changed = { ...nodeInfo('n1'), labels: { zone: 'b' } };
      expect(await a.updateSessionInfo(s.id, changed)).toBe(true);
      const [listed] = await b.listSessions();
      expect(listed?.info.labels).toEqual({ zone: 'b' });
      // Keys and expiry are untouched.
      expect((await b.holder('k'))?.sessionId).toBe(s.id);
      await harness.advance(TTL + 100);
      expect(await a.updateSessionInfo(s.id, nodeInfo('n1'))).toBe(false);
      expect(await b.listSessions()).toEqual([]);
    });

    it('expires a session TTL after its last renewal, measured by store time', async () => {
      const [a, b] = await pair();
      const s = await a.openSession(nodeInfo('n1'), TTL);
      await harness.advance(TTL * 0.75);
      expect(await a.renewSession(s.id)).toBe(true);
      await harness.advance(TTL * 0.75);
      expect((await b.listSessions()).map((x) => x.id)).toEqual([s.id]);
      await harness.advance(TTL * 0.5);
      expect(await b.listSessions()).toEqual([]);
      // Once expired it never comes back.
      expect(await a.renewSession(s.id)).toBe(false);
      await expect(a.tryAcquire('k', s.id)).rejects.toBeInstanceOf(SessionExpiredError);
    });

    it('gives a key to one session at a time and frees it on release', async () => {
      const [a, b] = await pair();
      const s1 = await a.openSession(nodeInfo('n1'), TTL);
      const s2 = await b.openSession(nodeInfo('n2'), TTL);
      const first = await a.tryAcquire('task/x', s1.id);
      expect(first.acquired).toBe(true);
      const second = await b.tryAcquire('task/x', s2.id);
      expect(second.acquired).toBe(false);
      if (!first.acquired || second.acquired) throw new Error('unreachable');
      expect(second.holder.sessionId).toBe(s1.id);
      expect(second.holder.token).toBe(first.token);
      // Re-acquiring what you hold returns the same token.
      expect(await a.tryAcquire('task/x', s1.id)).toEqual({ acquired: true, token: first.token });
      expect(await b.release('task/x', first.token + 1000n)).toBe(false);
      expect((await b.holder('task/x'))?.sessionId).toBe(s1.id);
      expect(await a.release('task/x', first.token)).toBe(true);
      expect(await b.holder('task/x')).toBeNull();
      const third = await b.tryAcquire('task/x', s2.id);
      expect(third.acquired && third.token > first.token).toBe(true);
    });

    it('takes and frees many keys at once as tryAcquire and release of each would (tryAcquireMany, releaseMany)', async () => {
      const [a, b] = await pair();
      const s1 = await a.openSession(nodeInfo('n1'), TTL);
      const s2 = await b.openSession(nodeInfo('n2'), TTL);
      const held = await a.tryAcquire('m/held', s1.id);
      const mine = await b.tryAcquire('m/mine', s2.id);
      const freed = await b.tryAcquire('m/freed', s2.id);
      if (!held.acquired || !mine.acquired || !freed.acquired) throw new Error('expected to acquire');
      await b.release('m/freed', freed.token);
      // More keys than one batch of any store (etcd 60, ZooKeeper 100 per request), unsorted.
      const fresh = Array.from({ length: 130 }, (_, i) => `m/k${String((i * 37) % 130).padStart(3, '0')}`);
      const keys = ['m/held', 'm/mine', 'm/freed', ...fresh];
      const results = await b.tryAcquireMany(keys, s2.id);
      expect(results).toHaveLength(keys.length);
      const [r0, r1, r2] = results;
      // A held key is not taken, and its holder is named; one's own key comes back with its token.
      expect(r0).toEqual({ acquired: false, holder: expect.objectContaining({ key: 'm/held', sessionId: s1.id, token: held.token }) });
      expect(r1).toEqual({ acquired: true, token: mine.token });
      expect(r2?.acquired && r2.token > freed.token).toBe(true);
      expect(results.slice(3).every((r) => r.acquired)).toBe(true);
      const tokenOf = new Map(keys.map((key, i) => [key, (results[i] as { token?: bigint }).token]));
      const holders = await a.listHolders('m/');
      expect(holders).toHaveLength(keys.length);
      for (const h of holders) expect([h.key, h.sessionId, h.token]).toEqual([h.key, h.key === 'm/held' ? s1.id : s2.id, h.key === 'm/held' ? held.token : tokenOf.get(h.key)]);

      // Released only where the token is the holder's; the next acquisition's token is greater.
      const k0 = fresh[0] as string;
      const k0Token = tokenOf.get(k0) as bigint;
      expect(await b.releaseMany([{ key: k0, token: k0Token }, { key: 'm/mine', token: mine.token + 1000n }])).toEqual([true, false]);
      expect(await a.holder(k0)).toBeNull();
      expect((await a.holder('m/mine'))?.sessionId).toBe(s2.id);
      const [again] = await a.tryAcquireMany([k0], s1.id);
      expect(again?.acquired && again.token > k0Token).toBe(true);
      expect(await b.releaseMany(fresh.slice(1).map((key) => ({ key, token: tokenOf.get(key) as bigint })))).toEqual(fresh.slice(1).map(() => true));
      expect((await a.listHolders('m/k')).map((h) => h.key)).toEqual([k0]);

      expect(await b.tryAcquireMany([], s2.id)).toEqual([]);
      expect(await b.releaseMany([])).toEqual([]);
      await expect(b.tryAcquireMany(['m/a', 'm/a'], s2.id)).rejects.toBeInstanceOf(ConfigError);
      await b.closeSession(s2.id);
      await expect(b.tryAcquireMany(['m/after-close'], s2.id)).rejects.toBeInstanceOf(SessionExpiredError);
    });

    it('gives each key of two concurrent tryAcquireMany to one of them', async () => {
      const [a, b] = await pair();
      const s1 = await a.openSession(nodeInfo('n1'), TTL);
      const s2 = await b.openSession(nodeInfo('n2'), TTL);
      const keys = Array.from({ length: 80 }, (_, i) => `race/${String(i).padStart(2, '0')}`);
      const [ra, rb] = await Promise.all([a.tryAcquireMany(keys, s1.id), b.tryAcquireMany([...keys].reverse(), s2.id)]);
      const byKey = new Map([...keys].reverse().map((key, i) => [key, rb[i]]));
      keys.forEach((key, i) => {
        const x = ra[i];
        const y = byKey.get(key);
        expect(Number(x?.acquired) + Number(y?.acquired)).toBe(1);
        const loser = x?.acquired ? y : x;
        expect(loser?.acquired === false && loser.holder.sessionId).toBe(x?.acquired ? s1.id : s2.id);
      });
      expect(await a.listHolders('race/')).toHaveLength(keys.length);
    });

    it('answers times, versions and durations as numbers and tokens as bigints, whatever its driver reads', async () => {
      const [a, b] = await pair();
      const s1 = await a.openSession(nodeInfo('n1'), TTL);
      const s2 = await b.openSession(nodeInfo('n2'), TTL);
      await a.tryAcquire('k', s1.id);
      const refused = await b.tryAcquire('k', s2.id);
      if (refused.acquired) throw new Error('expected the key to be held');
      await a.put('rec', 1);
      const holders = [refused.holder, await b.holder('k'), ...(await b.listHolders(''))];
      const records = [await b.get('rec'), ...(await b.list(''))];
      for (const h of holders) expect([typeof h?.token, typeof h?.acquiredAt]).toEqual(['bigint', 'number']);
      for (const r of records) expect([typeof r?.version, typeof r?.updatedAt]).toEqual(['number', 'number']);
      for (const s of await b.listSessions()) expect([typeof s.ttlMs, typeof s.ageMs, typeof s.expiresInMs]).toEqual(['number', 'number', 'number']);
    });

    it('lets exactly one of many concurrent acquirers win', async () => {
      const [a, b] = await pair();
      const sessions = await Promise.all(
        Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).openSession(nodeInfo(`n${i}`), TTL)),
      );
      const results = await Promise.all(sessions.map((s, i) => (i % 2 ? a : b).tryAcquire('race', s.id)));
      expect(results.filter((r) => r.acquired)).toHaveLength(1);
    });

    it('issues strictly increasing tokens across release, close and expiry', async () => {
      const [a, b] = await pair();
      const tokens: bigint[] = [];
      for (let round = 0; round < 3; round++) {
        const s = await a.openSession(nodeInfo('n1'), TTL);
        const r = await a.tryAcquire('k', s.id);
        if (!r.acquired) throw new Error('expected to acquire');
        tokens.push(r.token);
        if (round === 0) await a.release('k', r.token);
        if (round === 1) await a.closeSession(s.id);
        if (round === 2) await harness.advance(TTL + 1);
      }
      const s = await b.openSession(nodeInfo('n2'), TTL);
      const last = await b.tryAcquire('k', s.id);
      if (!last.acquired) throw new Error('expected to acquire after expiry');
      tokens.push(last.token);
      for (let i = 1; i < tokens.length; i++) expect(tokens[i]! > tokens[i - 1]!).toBe(true);
    });

    it('drops ownership with its session: on close and on expiry', async () => {
      const [a, b] = await pair();
      const s1 = await a.openSession(nodeInfo('n1'), TTL);
      const s2 = await b.openSession(nodeInfo('n2'), TTL * 10);
      await a.tryAcquire('p/1', s1.id);
      await a.tryAcquire('p/2', s1.id);
      await b.tryAcquire('p/3', s2.id);
      expect((await b.listHolders('p/')).map((h) => h.key)).toEqual(['p/1', 'p/2', 'p/3']);
      await a.closeSession(s1.id);
      expect((await b.listHolders('p/')).map((h) => h.key)).toEqual(['p/3']);
      const s3 = await a.openSession(nodeInfo('n1'), TTL);
      await a.tryAcquire('p/1', s3.id);
      await harness.advance(TTL + 1);
      expect(await b.holder('p/1')).toBeNull();
      expect((await b.listHolders('p/')).map((h) => h.key)).toEqual(['p/3']);
      expect((await b.tryAcquire('p/1', s2.id)).acquired).toBe(true);
    });

    it('rejects a stale fenced write once the key moved on, and accepts the holder', async () => {
      const [a, b] = await pair();
      const s1 = await a.openSession(nodeInfo('n1'), TTL);
      const r1 = await a.tryAcquire('task/x', s1.id);
      if (!r1.acquired) throw new Error('expected to acquire');
      const guard1 = { key: 'task/x', token: r1.token };
      expect(await a.put('checkpoint/x', { n: 1 }, { guard: guard1 })).toMatchObject({ ok: true });
      await harness.advance(TTL + 1); // the owner "pauses" past its TTL
      const s2 = await b.openSession(nodeInfo('n2'), TTL);
      const r2 = await b.tryAcquire('task/x', s2.id);
      if (!r2.acquired) throw new Error('expected takeover');
      expect(await a.put('checkpoint/x', { n: 99 }, { guard: guard1 })).toEqual({ ok: false, reason: 'fenced' });
      expect(await a.delete('checkpoint/x', { guard: guard1 })).toBe(false);
      expect(await b.put('checkpoint/x', { n: 2 }, { guard: { key: 'task/x', token: r2.token } })).toMatchObject({ ok: true });
      expect((await a.get('checkpoint/x'))?.value).toEqual({ n: 2 });
      // A released owner is fenced too.
      await b.release('task/x', r2.token);
      expect(await b.put('checkpoint/x', { n: 3 }, { guard: { key: 'task/x', token: r2.token } })).toEqual({
        ok: false,
        reason: 'fenced',
      });
    });

    it('claims a tick once: a unique insert among concurrent claimers', async () => {
      const [a, b] = await pair();
      const attempts = await Promise.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).put('run/x/000000000001000', { node: i }, { ifVersion: 'absent' })),
      );
      expect(attempts.filter((r) => r.ok)).toHaveLength(1);
      expect(attempts.filter((r) => !r.ok).every((r) => !r.ok && r.reason === 'version')).toBe(true);
    });

    it('compares and sets by version', async () => {
      const [a, b] = await pair();
      const created = await a.put('state/v', { v: 1 });
      expect(created).toEqual({ ok: true, version: 1 });
      expect(await b.put('state/v', { v: 2 }, { ifVersion: 1 })).toEqual({ ok: true, version: 2 });
      expect(await a.put('state/v', { v: 3 }, { ifVersion: 1 })).toEqual({ ok: false, reason: 'version' });
      const record = await a.get<{ v: number }>('state/v');
      expect(record?.value).toEqual({ v: 2 });
      expect(record?.version).toBe(2);
      expect(typeof record?.updatedAt).toBe('number');
      expect(await a.delete('state/v', { ifVersion: 1 })).toBe(false);
      expect(await a.delete('state/v', { ifVersion: 2 })).toBe(true);
      expect(await a.get('state/v')).toBeNull();
      expect(await a.delete('state/v')).toBe(false);
    });

    it('lists records by prefix in key order, reversed and limited, and deletes a range', async () => {
      const [a] = await pair();
      for (const key of ['r/b', 'r/a', 'r/c', 'rx', 'q/a']) await a.put(key, { key });
      expect((await a.list('r/')).map((r) => r.key)).toEqual(['r/a', 'r/b', 'r/c']);
      expect((await a.list('r/', { reverse: true, limit: 2 })).map((r) => r.key)).toEqual(['r/c', 'r/b']);
      expect(await a.deleteBefore('r/', 'r/c')).toBe(2);
      expect((await a.list('r')).map((r) => r.key)).toEqual(['r/c', 'rx']);
    });

    it('keeps clusters apart', async () => {
      const [a] = await pair();
      const [other] = await pair();
      const s = await a.openSession(nodeInfo('n1'), TTL);
      await a.tryAcquire('k', s.id);
      await a.put('rec', 1);
      expect(await other.listSessions()).toEqual([]);
      expect(await other.holder('k')).toBeNull();
      expect(await other.get('rec')).toBeNull();
      const s2 = await other.openSession(nodeInfo('n2'), TTL);
      expect((await other.tryAcquire('k', s2.id)).acquired).toBe(true);
    });

    it('lists the clusters it holds something of, whatever their names, and never one only opened and read', async () => {
      const [withSession] = await pair();
      const [withRecord] = await pair();
      const [untouched] = await pair();
      // A name with the characters each store escapes in its keys (hash tag, path, percent).
      const odd = await harness.open(`conf-${RUN}-${++clusterSeq} {odd}/100%`);
      opened.push(odd);
      await withSession.openSession(nodeInfo('n1'), TTL);
      await withRecord.put('rec', 1);
      await odd.put('rec', 1);
      // What `baton status` does on a mistyped cluster name before it asks which clusters exist.
      await untouched.listSessions();
      await untouched.listHolders('');
      await untouched.list('');
      await untouched.get('rec');
      const listed = await untouched.listClusters();
      expect(listed).toEqual(expect.arrayContaining([withSession.cluster, withRecord.cluster, odd.cluster]));
      expect(listed).not.toContain(untouched.cluster);
      expect(new Set(listed).size).toBe(listed.length);
    });

    it('notifies watchers of ownership and session changes made by another handle', async () => {
      const [a, b] = await pair();
      const seen: string[] = [];
      const unwatch = b.watch((change) => seen.push(change.scope));
      const s = await a.openSession(nodeInfo('n1'), TTL);
      await harness.advance(200);
      expect(seen.some((scope) => scope === 'sessions' || scope === 'any')).toBe(true);
      seen.length = 0;
      const r = await a.tryAcquire('k', s.id);
      await harness.advance(200);
      expect(seen.some((scope) => scope === 'owners' || scope === 'any')).toBe(true);
      seen.length = 0;
      if (r.acquired) await a.release('k', r.token);
      await harness.advance(200);
      expect(seen.some((scope) => scope === 'owners' || scope === 'any')).toBe(true);
      unwatch();
      seen.length = 0;
      await a.put('x', 1);
      await harness.advance(200);
      expect(seen).toEqual([]);
    });

    it('names, in a change that carries one, the holder the store really has: after acquire, release and close', async () => {
      const [a, b] = await pair();
      const changes: Change[] = [];
      const unwatch = b.watch((change) => changes.push(change));
      const s = await a.openSession(nodeInfo('n1'), TTL);
      const first = await a.tryAcquire('k1', s.id);
      const second = await a.tryAcquire('k2', s.id);
      if (!first.acquired || !second.acquired) throw new Error('fresh keys must be free');
      await harness.advance(200);
      for (const c of changes.filter((c) => c.holder !== undefined && c.holder !== null)) {
        expect(c.scope).toBe('owners');
        expect(c.holder?.key).toBe(c.key);
        expect(c.holder?.sessionId).toBe(s.id);
        expect(c.holder?.token).toBe(c.key === 'k1' ? first.token : second.token);
        expect(typeof c.holder?.acquiredAt).toBe('number');
      }
      changes.length = 0;
      await a.release('k1', first.token);
      await harness.advance(200);
      for (const c of changes.filter((c) => c.holder !== undefined)) expect([c.key, c.holder]).toEqual(['k1', null]);
      changes.length = 0;
      await a.closeSession(s.id);
      await harness.advance(200);
      // k2 went with the session: named by key (holder null) or by the ended session, never as still held.
      for (const c of changes) {
        if (c.endedSession !== undefined) expect([c.scope, c.key, c.endedSession]).toEqual(['owners', undefined, s.id]);
        if (c.holder !== undefined) expect([c.key, c.holder]).toEqual(['k2', null]);
      }
      expect(await b.holder('k2')).toBeNull();
      unwatch();
    });

    it('reports store time near the harness clock', async () => {
      const [a] = await pair();
      const t1 = await a.time();
      await harness.advance(1000);
      const t2 = await a.time();
      expect(t2 - t1).toBeGreaterThanOrEqual(900);
    });
  });
}
