/**
 * Locks, semaphores and shared state across real stores (SQLite in a temp file, and every server store of
 * the test machine), with three cluster nodes in this process, each with its own store connection, and
 * real time kept short: mutual exclusion with increasing tokens, LockHeldError naming the holder, a
 * semaphore that never exceeds its limit, CAS with exactly one winner, and a watch that sees another
 * node's write.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createCluster, type Cluster } from '../../src/node/node.js';
import { LockHeldError } from '../../src/core/errors.js';
import { randomId } from '../../src/core/ids.js';
import { silentLogger } from '../../src/core/logger.js';
import { SERVER_BACKENDS } from '../helpers/backends.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-primitives-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const STORES: { kind: string; url: () => string }[] = [
  { kind: 'sqlite', url: () => `sqlite:${join(dir, 'primitives.db')}` },
  ...SERVER_BACKENDS.map((b) => ({ kind: b.kind, url: () => b.url('127.0.0.1', b.port) })),
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(STORES)('primitives on $kind', (store) => {
  const clusters: Cluster[] = [];
  afterEach(async () => {
    await Promise.allSettled(clusters.splice(0).map((c) => c.close()));
  });

  async function nodes(n: number): Promise<Cluster[]> {
    const name = `prim-${randomId(4)}`;
    const started: Cluster[] = [];
    for (let i = 0; i < n; i++) {
      const cluster = await createCluster({ store: store.url(), name, ttl: 5000, logger: silentLogger, node: { id: `node-${i + 1}` } });
      clusters.push(cluster);
      await cluster.start();
      started.push(cluster);
    }
    return started;
  }

  it('lock: one holder at a time across 3 nodes, tokens increasing, LockHeldError names the holder', async () => {
    const all = await nodes(3);
    let inside = 0;
    let maxInside = 0;
    const tokens: bigint[] = [];
    await Promise.all(
      all.map(async (cluster) => {
        for (let i = 0; i < 3; i++) {
          await using lock = await cluster.lock('job', { wait: '20s' });
          inside += 1;
          maxInside = Math.max(maxInside, inside);
          tokens.push(lock.token);
          await sleep(15);
          inside -= 1;
        }
      }),
    );
    expect(maxInside).toBe(1);
    expect(tokens).toHaveLength(9);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]! > tokens[i - 1]!).toBe(true);

    const held = await all[0]!.lock('job');
    const error = await all[1]!.lock('job', { wait: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockHeldError);
    expect((error as Error).message).toBe(`lock "job": held by node-1 (${hostname()}:${process.pid})`);
    const waiting = all[2]!.lock('job');
    const releasedAt = Date.now();
    await held.release();
    const next = await waiting;
    // Woken by the store's hint (push) or its short poll, well before a TTL.
    expect(Date.now() - releasedAt).toBeLessThan(1000);
    expect(next.token > held.token).toBe(true);
    await next.release();
  });

  it('semaphore: never more than its limit held across 3 nodes × 2 callers', async () => {
    const all = await nodes(3);
    let inside = 0;
    let maxInside = 0;
    let count = 0;
    await Promise.all(
      all.flatMap((cluster) =>
        [0, 1].map(async () => {
          const sem = cluster.semaphore('uploads', { limit: 2 });
          for (let i = 0; i < 2; i++) {
            await using permit = await sem.acquire({ wait: '20s' });
            void permit;
            inside += 1;
            count += 1;
            maxInside = Math.max(maxInside, inside);
            await sleep(20);
            inside -= 1;
          }
        }),
      ),
    );
    expect(count).toBe(12);
    expect(maxInside).toBeLessThanOrEqual(2);
    expect(await all[0]!.semaphore('uploads', { limit: 2 }).holders()).toEqual([]);
  });

  it('shared state: CAS with exactly one winner, and a watch on another node sees the write', async () => {
    const all = await nodes(3);
    const results = await Promise.all(all.map((c, i) => c.sharedState<number>('config').cas('absent', i)));
    expect(results.filter(Boolean)).toHaveLength(1);
    const current = (await all[0]!.sharedState<number>('config').get())!;
    expect(current).toEqual({ value: results.indexOf(true), version: 1 });

    const controller = new AbortController();
    const seen: number[] = [];
    let sawFirst: () => void = () => undefined;
    const first = new Promise<void>((resolve) => (sawFirst = resolve));
    const watching = (async () => {
      for await (const v of all[1]!.sharedState<number>('config').watch({ signal: controller.signal })) {
        seen.push(v.version);
        sawFirst();
        if (v.version === 3) controller.abort();
      }
    })();
    await first; // the watch has read the current value: what follows are changes
    const updates = await Promise.all(all.map((c) => c.sharedState<number>('config').cas(1, 100)));
    expect(updates.filter(Boolean)).toHaveLength(1);
    await all[2]!.sharedState<number>('config').set(200);
    await Promise.race([watching, sleep(5000).then(() => controller.abort())]);
    expect(seen[0]).toBe(1);
    expect(seen.at(-1)).toBe(3);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
  });
});
