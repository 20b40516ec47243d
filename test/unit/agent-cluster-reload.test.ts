/**
 * Cluster.addTask / removeTask on a running node (what the agent's SIGHUP reload uses), on the memory
 * store and a fake clock: other tasks keep their owner and token, an added task runs once per tick, a
 * removed task is released and taken over at once by another declaring node, and the node's published
 * task list follows.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { Sim } from '../helpers/sim.js';

let sim: Sim;
afterEach(async () => {
  await sim?.closeAll();
  expect(sim?.clock.pendingTimers ?? 0).toBe(0);
});

const noop = () => undefined;

describe('tasks added and removed on a running cluster', () => {
  it('adds a task without touching the others, and runs it once per tick', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['keep', { every: '1s' }]]);
    await sim.node('b', [['keep', { every: '1s' }]]);
    // Past rebalanceAfter (TTL, 3 s): placement has settled.
    await sim.advance(8000);
    const before = (await a.cluster.status()).tasks.find((t) => t.unit === 'keep')?.owner;
    expect(before).not.toBeNull();
    // A broadcast task is outside the load balance, so adding it cannot move "keep" (a singleton added
    // to one node only may: placement then rebalances, gracefully, between runs — see docs/operations.md).
    await a.cluster.addTask('added', { every: '1s', mode: 'broadcast' }, noop);
    await sim.advance(5000);
    const status = await a.cluster.status();
    // Same owner, same token: adding a task does not disturb the ones already running.
    expect(status.tasks.find((t) => t.unit === 'keep')?.owner?.token).toBe(before?.token);
    const added = status.tasks.find((t) => t.unit === 'added@a');
    expect(added?.owner?.node).toBe('a');
    // The node's published task list shows it (Store.updateSessionInfo).
    expect(status.nodes.find((n) => n.id === 'a')?.owns).toContain('added@a');
    expect(added?.declaredBy).toBe(1);
    const ticks = sim.starts.filter((s) => s.unit === 'added@a').map((s) => s.tick);
    expect(ticks.length).toBeGreaterThanOrEqual(4);
    expect(new Set(ticks).size).toBe(ticks.length);
    expect(sim.duplicateTicks()).toBe(0);
  });

  it('adds a singleton on a running node: it is taken and run', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['keep', { every: '1s' }]]);
    await sim.advance(2000);
    await a.cluster.addTask('added', { every: '1s' }, noop);
    await sim.advance(4000);
    const status = await a.cluster.status();
    expect(status.tasks.find((t) => t.unit === 'added')?.owner?.node).toBe('a');
    expect(status.tasks.find((t) => t.unit === 'added')?.declaredBy).toBe(1);
    expect(sim.starts.filter((s) => s.unit === 'added').length).toBeGreaterThanOrEqual(3);
  });

  it('removes a task: its run is aborted, its lease released, another declaring node takes it at once', async () => {
    sim = new Sim();
    let aborted: unknown;
    const slow = async (ctx: { signal: AbortSignal }) =>
      new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => ((aborted = ctx.signal.reason), resolve()), { once: true }));
    const a = await sim.node('a', [['x', { every: '1s' }, slow as never], ['y', { every: '1s' }]]);
    await sim.advance(2500);
    const b = await sim.node('b', [['x', { every: '1s' }]]);
    await sim.advance(500);
    const ownerBefore = (await a.cluster.status()).tasks.find((t) => t.unit === 'x')?.owner;
    expect(ownerBefore?.node).toBe('a');
    const yToken = (await a.cluster.status()).tasks.find((t) => t.unit === 'y')?.owner?.token;
    expect(await a.cluster.removeTask('x')).toBe(true);
    expect(String(aborted)).toContain('removed from this node');
    expect(await a.cluster.removeTask('x')).toBe(false);
    // Released, not left to the TTL (3 s): b owns it well before.
    await sim.advance(1000);
    const status = await b.cluster.status();
    expect(status.tasks.find((t) => t.unit === 'x')?.owner?.node).toBe('b');
    expect(status.tasks.find((t) => t.unit === 'x')?.declaredBy).toBe(1);
    expect(status.tasks.find((t) => t.unit === 'y')?.owner?.token).toBe(yToken);
  });

  it('refuses to remove a task another task depends on, and to add a duplicate', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['first', { every: '1s' }], ['second', { every: '1s', dependsOn: 'first' }]]);
    await expect(a.cluster.removeTask('first')).rejects.toThrow(ConfigError);
    await expect(a.cluster.addTask('first', { every: '1s' }, noop)).rejects.toThrow(/declared twice/);
    await expect(a.cluster.addTask('bad', { every: 'soon' }, noop)).rejects.toThrow(/every/);
  });

  it('adds a mutex task (turns) after start', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['keep', { every: '1s' }]]);
    await sim.advance(1000);
    await a.cluster.addTask('mx', { every: '1s', mode: 'mutex' }, noop);
    await sim.advance(4000);
    expect(sim.starts.filter((s) => s.unit === 'mx').length).toBeGreaterThanOrEqual(3);
    expect(await a.cluster.removeTask('mx')).toBe(true);
    const count = sim.starts.filter((s) => s.unit === 'mx').length;
    await sim.advance(3000);
    expect(sim.starts.filter((s) => s.unit === 'mx').length).toBe(count);
  });
});
