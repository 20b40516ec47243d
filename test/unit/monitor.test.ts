/**
 * The monitor on the memory store and a FakeClock: the events it derives from the store, its metrics,
 * and alerts — each rule raised once and resolved once, by one of two monitors, delivered to a real
 * local webhook receiver.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { sleep } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { startMonitor, type Monitor, type MonitorOptions } from '../../src/monitor/monitor.js';
import type { StampedEvent } from '../../src/monitor/monitor-events.js';
import type { TaskContext } from '../../src/scheduler/task.js';
import { Sim } from '../helpers/sim.js';

let sim: Sim;
const monitors: Monitor[] = [];
let receiver: Server | undefined;

afterEach(async () => {
  await Promise.all(monitors.splice(0).map((m) => m.close()));
  await sim?.closeAll();
  await new Promise<void>((resolve) => (receiver ? receiver.close(() => resolve()) : resolve()));
  receiver = undefined;
});

async function monitor(options: Partial<MonitorOptions> = {}): Promise<{ monitor: Monitor; events: StampedEvent[] }> {
  const m = await startMonitor({ store: sim.backend.connect('sim'), clock: sim.clock, logger: silentLogger, listen: false, pollEvery: 100, ttl: 3000, ...options });
  monitors.push(m);
  const events: StampedEvent[] = [];
  m.on((e) => events.push(e));
  return { monitor: m, events };
}

describe('monitor events', () => {
  it('reports runs, failures, an owner change and a node leaving, and counts them in its metrics', async () => {
    sim = new Sim();
    const { monitor: m, events } = await monitor({ alerts: false });
    let failNext = false;
    const tasks: [string, { every: string }, (ctx: TaskContext) => void][] = [
      ['sync', { every: '1s' }, () => undefined],
      ['flaky', { every: '1s' }, () => {
        if (failNext) throw new Error('upstream 502');
      }],
    ];
    const a = await sim.node('a', tasks);
    await sim.advance(1000);
    const b = await sim.node('b', tasks);
    await sim.advance(4000);
    expect(events.filter((e) => e.type === 'node:joined').map((e) => (e.type === 'node:joined' ? e.node.id : ''))).toEqual(['a', 'b']);
    const owner = (await sim.owners()).get('sync') as string;
    expect(events.some((e) => e.type === 'owner:changed' && e.task === 'sync' && e.to?.node === owner)).toBe(true);

    failNext = true;
    await sim.advance(2000);
    failNext = false;
    const failed = events.filter((e) => e.type === 'run:failed' && e.task === 'flaky');
    expect(failed.length).toBeGreaterThanOrEqual(1);
    expect(failed[0]?.type === 'run:failed' && failed[0].run.error).toContain('upstream 502');

    // The owner of `sync` is cut off: its session ends, the other node takes over.
    const beforeCut = events.length;
    sim.backend.sever((owner === 'a' ? a : b).store);
    await sim.until(async () => (await sim.owners()).get('sync') !== undefined && (await sim.owners()).get('sync') !== owner, 10_000, 50);
    await sim.advance(1000);
    const left = events.filter((e) => e.type === 'node:left');
    expect(left.map((e) => (e.type === 'node:left' ? e.node.id : ''))).toEqual([owner]);
    const handover = events.slice(beforeCut).filter((e) => e.type === 'owner:changed' && e.task === 'sync');
    expect(handover.map((e) => (e.type === 'owner:changed' ? [e.from?.node, e.to?.node] : []))).toEqual([[owner, owner === 'a' ? 'b' : 'a']]);
    // The monitor classifies it (the old owner's node is gone: a failover) and measures the gap it saw.
    const change = handover[0]!;
    expect(change.type === 'owner:changed' && [change.kind, typeof change.gapMs]).toEqual(['failover', 'number']);
    // Numbered in order: a reconnecting event stream resumes after the last id it saw.
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));

    // Every run the store holds was counted once, by outcome.
    await m.refresh();
    const records = (await sim.runRecords('sync')).map((r) => r.value);
    const succeeded = records.filter((r) => r.status === 'succeeded').length;
    const finished = events.filter((e) => e.type === 'run:succeeded' && e.task === 'sync').length;
    expect(finished).toBe(succeeded);
    const metrics = (await m.metrics()).body;
    expect(metrics).toContain(`baton_task_runs_total{task="sync",unit="sync",outcome="succeeded",cluster="sim"} ${succeeded}`);
    expect(metrics).toMatch(/baton_task_runs_total\{task="flaky",unit="flaky",outcome="failed",cluster="sim"\} [1-9]/);
    expect(metrics).toContain('baton_nodes{cluster="sim"} 1');
    expect(metrics).toMatch(/baton_owner_changes_total\{task="sync",unit="sync",cluster="sim"\} [2-9]/);
    expect(m.status()?.nodes.map((n) => n.id)).toEqual([owner === 'a' ? 'b' : 'a']);
  });
});

interface Delivery {
  readonly status: 'firing' | 'resolved';
  readonly alert: { readonly id: string; readonly rule: string; readonly subject: string };
}

async function webhookReceiver(): Promise<{ url: string; deliveries: Delivery[] }> {
  const deliveries: Delivery[] = [];
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      deliveries.push(JSON.parse(body) as Delivery);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver?.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, deliveries };
}

describe('alerts', () => {
  it('each rule fires once and resolves once, decided by one of two monitors', async () => {
    sim = new Sim();
    const hook = await webhookReceiver();
    const alerts = {
      noOwnerFor: '5s',
      missedTicks: '5s',
      consecutiveFailures: 2,
      runLongerThan: '3s',
      nodeFlapping: { joins: 3, within: '1m' },
      webhook: { url: hook.url },
    } as const;
    const first = await monitor({ alerts });
    const second = await monitor({ alerts });
    let failing = true;
    let slowFor = 0;
    let busyFor = 0;
    const clock = sim.clock;
    await sim.node('n1', [
      ['flaky', { every: '1s' }, () => {
        if (failing) throw new Error('boom');
      }],
      ['slow', { every: '1s' }, async (ctx: TaskContext) => {
        if (slowFor > 0) await sleep(clock, slowFor, ctx.signal);
        slowFor = 0;
      }],
      ['busy', { every: '1s', overlap: 'skip' }, async (ctx: TaskContext) => {
        if (busyFor > 0) await sleep(clock, busyFor, ctx.signal);
        busyFor = 0;
      }],
    ]);
    const orphanNode = await sim.node('orphan-1', [['orphan', { every: '1s' }]]);
    const flappy = await sim.node('flappy', [['flappy-task', { every: '1m' }]]);
    await sim.advance(3000);
    // consecutive-failures: flaky has failed every second.
    await sim.until(() => active(first.monitor).includes('consecutive-failures:flaky'), 5000, 50);
    failing = false;
    // long-run and missed-ticks.
    slowFor = 4500;
    busyFor = 3500;
    await sim.until(() => active(first.monitor).includes('long-run:slow'), 10_000, 50);
    await sim.until(() => active(first.monitor).includes('missed-ticks:busy'), 10_000, 50);
    // no-owner: the only node declaring `orphan` is cut off for good.
    sim.backend.sever(orphanNode.store);
    await sim.until(() => active(first.monitor).includes('no-owner:orphan'), 15_000, 50);
    // node-flapping: `flappy` loses its session twice within the minute.
    for (let i = 0; i < 2; i++) {
      sim.backend.sever(flappy.store);
      await sim.advance(4000);
      sim.backend.heal(flappy.store);
      await sim.advance(2000);
    }
    await sim.until(() => active(first.monitor).includes('node-flapping:flappy'), 10_000, 50);
    // Everything but the orphan and the flapping resolves by itself; a new node takes the orphan.
    await sim.until(() => !active(first.monitor).some((id) => /^(consecutive-failures|long-run|missed-ticks)/.test(id)), 10_000, 50);
    await sim.node('orphan-2', [['orphan', { every: '1s' }]]);
    await sim.until(() => !active(first.monitor).includes('no-owner:orphan'), 10_000, 50);
    // The window of the flapping rule passes.
    await sim.until(() => active(first.monitor).length === 0, 70_000, 500);
    // The other monitor shows the same alerts (it reads what the deciding one wrote).
    await second.monitor.refresh();
    expect(second.monitor.status()?.alerts).toEqual([]);

    // Besides the five provoked alerts, the slow runs also overran (busy) and skipped ticks (slow), and the
    // orphan's ticks without an owner were recorded missed: each of these is an alert of its own.
    const expected = ['consecutive-failures:flaky', 'long-run:slow', 'missed-ticks:busy', 'no-owner:orphan', 'node-flapping:flappy', 'long-run:busy', 'missed-ticks:slow', 'missed-ticks:orphan'];
    await vi.waitFor(() => expect(hook.deliveries.length).toBe(expected.length * 2), { timeout: 5000 });
    expect(new Set(hook.deliveries.map((d) => d.alert.id))).toEqual(new Set(expected));
    for (const id of expected) {
      expect(hook.deliveries.filter((d) => d.alert.id === id).map((d) => d.status), id).toEqual(['firing', 'resolved']);
    }
    // Both monitors' event streams saw each alert raised and resolved once.
    for (const { events } of [first, second]) {
      for (const id of expected) {
        const seen = events.filter((e) => (e.type === 'alert:raised' || e.type === 'alert:resolved') && e.alert.id === id).map((e) => e.type);
        expect(seen, id).toEqual(['alert:raised', 'alert:resolved']);
      }
    }
  });

  it('a monitor taking over the alerts does not raise again what is active', async () => {
    sim = new Sim();
    const hook = await webhookReceiver();
    const alerts = { consecutiveFailures: 2, webhook: { url: hook.url } } as const;
    const first = await monitor({ alerts });
    let failing = true;
    await sim.node('n1', [['flaky', { every: '1s' }, () => {
      if (failing) throw new Error('boom');
    }]]);
    await sim.until(() => active(first.monitor).includes('consecutive-failures:flaky'), 10_000, 50);
    const second = await monitor({ alerts });
    await first.monitor.close();
    await sim.advance(5000);
    failing = false;
    await sim.until(() => active(second.monitor).length === 0, 10_000, 50);
    await vi.waitFor(() => expect(hook.deliveries.map((d) => d.status)).toEqual(['firing', 'resolved']), { timeout: 5000 });
  });
});

const active = (m: Monitor): string[] => (m.status()?.alerts ?? []).map((a) => a.id);

describe('monitor options', () => {
  it('rejects bad options with the field named, and open reads outside loopback', async () => {
    sim = new Sim();
    const store = sim.backend.connect('sim');
    const bad: [Partial<MonitorOptions>, RegExp][] = [
      [{ listen: '0.0.0.0:0', token: false }, /refusing to serve 0\.0\.0\.0 without a token/],
      [{ listen: '127.0.0.1:0', token: 'short' }, /token: expected at least 16 characters/],
      [{ listen: 'localhost' }, /listen: expected "host:port"/],
      [{ listen: '127.0.0.1:70000' }, /listen: expected "host:port"/],
      [{ pollEvery: '10ms' }, /pollEvery must be at least 50ms/],
      [{ alerts: { consecutiveFailures: 0 } }, /alerts\.consecutiveFailures: expected an integer from 1 to 100/],
      [{ alerts: { noOwnerFor: 'soon' } as never }, /alerts\.noOwnerFor/],
      [{ alerts: { nodeFlapping: { joins: 1, within: '1m' } } }, /alerts\.nodeFlapping/],
      [{ alerts: { missedTick: '1m' } as never }, /alerts\.missedTick: unknown rule/],
      [{ alerts: { webhook: { url: 'ftp://x' } } }, /webhook: url must be an http or https URL/],
      [{ color: 'red' } as never, /unknown option "color"/],
    ];
    for (const [options, message] of bad) {
      await expect(startMonitor({ store, clock: sim.clock, logger: silentLogger, listen: false, ...options }), JSON.stringify(options)).rejects.toThrow(message);
    }
    // Reads without a token are allowed on loopback; write actions are then refused.
    const open = await startMonitor({ store, clock: sim.clock, logger: silentLogger, listen: '127.0.0.1:0', token: false, alerts: false });
    monitors.push(open);
    expect(open.token).toBeNull();
    expect((await fetch(new URL('/api/status', open.url))).status).toBe(200);
    expect((await fetch(new URL('/api/tasks/x/pause', open.url), { method: 'POST' })).status).toBe(403);
  });
});

describe('cluster.monitor()', () => {
  it('runs inside a node on its store, is not counted as a node, and closes with the cluster', async () => {
    sim = new Sim();
    const node = await sim.node('a', [['sync', { every: '1s' }]]);
    const embedded = await node.cluster.monitor({ listen: '127.0.0.1:0', pollEvery: 100 });
    await sim.advance(2000);
    const res = await fetch(new URL('/api/status', embedded.url), { headers: { Authorization: `Bearer ${embedded.token}` } });
    const status = (await res.json()) as { nodes: { id: string }[]; monitors: { id: string }[]; tasks: { unit: string; owner: { node: string } }[] };
    expect(status.nodes.map((n) => n.id)).toEqual(['a']);
    expect(status.monitors).toHaveLength(1);
    expect(status.tasks.map((t) => [t.unit, t.owner.node])).toEqual([['sync', 'a']]);
    await sim.closeAll();
    await expect(fetch(new URL('/api/status', embedded.url))).rejects.toThrow();
  });
});
