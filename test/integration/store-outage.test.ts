/**
 * A node cut off from its store, on every server store: it gives up its tasks before another node gets
 * them (invariant 4), the other node takes over with a greater token, no tick runs twice, nothing throws
 * unhandled, and when the connection comes back the node rejoins with a new session.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createCluster, type Cluster } from '../../src/node/node.js';
import { silentLogger } from '../../src/core/logger.js';
import { randomId } from '../../src/core/ids.js';
import { SERVER_BACKENDS } from '../helpers/backends.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));

function waitFor<T>(what: string, check: () => T | undefined, timeoutMs: number): Promise<T> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const poll = () => {
      const value = check();
      if (value !== undefined) return resolve(value);
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      setTimeout(poll, 20);
    };
    poll();
  });
}

interface Observed {
  lostAt?: number;
  opened: number;
  acquired: { token: bigint; at: number }[];
  ticks: number[];
}

function observe(cluster: Cluster): Observed {
  const seen: Observed = { opened: 0, acquired: [], ticks: [] };
  cluster.on('session:lost', () => {
    seen.lostAt ??= Date.now();
  });
  cluster.on('session:opened', () => {
    seen.opened += 1;
  });
  cluster.on('owner:acquired', (e) => {
    seen.acquired.push({ token: e.token, at: Date.now() });
  });
  cluster.on('run:started', (e) => {
    seen.ticks.push(e.tick);
  });
  return seen;
}

describe.each(SERVER_BACKENDS)('store outage: $kind', (backend) => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it('self-fences the cut-off owner, fails over with a greater token and rejoins after', async () => {
    const proxy = new TcpProxy('127.0.0.1', backend.port);
    const port = await proxy.start();
    cleanup.push(() => proxy.close());
    const name = `outage-${randomId(4)}`;
    const common = { name, ttl: 2000, logger: silentLogger, rebalanceAfter: 60_000 };
    const cut = await createCluster({ ...common, store: backend.url('127.0.0.1', port), node: { id: 'cut' } });
    const other = await createCluster({ ...common, store: backend.url('127.0.0.1', backend.port), node: { id: 'other' } });
    cleanup.push(() => other.close(), () => cut.close());
    for (const c of [cut, other]) c.task('job', { every: '250ms' }, () => undefined);
    const a = observe(cut);
    const b = observe(other);
    await cut.start();
    const first = await waitFor('the first owner', () => a.acquired[0], 10_000);
    await other.start();
    await waitFor('a few runs', () => (a.ticks.length >= 3 ? true : undefined), 10_000);

    const unhandledBefore = unhandled.length;
    const cutAt = Date.now();
    proxy.cut();
    const takeover = await waitFor('the takeover', () => b.acquired[0], 15_000);
    expect(takeover.token > first.token).toBe(true);
    expect(a.lostAt).toBeDefined();
    // Invariant 4: the cut-off owner stopped acting before the store let the other node in.
    expect(a.lostAt as number).toBeLessThanOrEqual(takeover.at);
    expect(takeover.at - cutAt).toBeLessThan(15_000);

    proxy.restore();
    await waitFor('a new session after the outage', () => (a.opened >= 2 ? true : undefined), 20_000);
    await waitFor('runs on the new owner', () => (b.ticks.length >= 2 ? true : undefined), 10_000);
    const ticks = [...a.ticks, ...b.ticks];
    expect(new Set(ticks).size).toBe(ticks.length);
    expect(unhandled.slice(unhandledBefore)).toEqual([]);
  });
});
