import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { MemoryBackend } from '../../src/stores/memory/memory-store.js';
import { OwnershipView } from '../../src/scheduler/ownership-view.js';
import type { NodeInfo } from '../../src/core/node-info.js';

const info = (id: string): NodeInfo => ({ id, host: 'h', pid: 1, version: 't', labels: {}, startedAt: 0, tasks: {} }) as unknown as NodeInfo;

async function setup() {
  const clock = new FakeClock();
  const store = new MemoryBackend({ clock }).connect('view');
  const a = await store.openSession(info('a'), 5000);
  const b = await store.openSession(info('b'), 5000);
  await store.tryAcquire('task/x', a.id);
  const view = new OwnershipView({ store, clock, prefix: 'task/', resyncEveryMs: 60_000 });
  await view.refresh();
  return { store, view, a, b };
}

describe('OwnershipView', () => {
  it('drops an ended session and its keys on the hint, before any read, and reports the membership changed once', async () => {
    const { view, a, b } = await setup();
    const before = view.membershipKey;
    expect(view.holder('task/x')?.sessionId).toBe(a.id);

    expect(view.hint({ scope: 'owners', endedSession: a.id })).toBe(true);
    expect(view.holder('task/x')).toBeUndefined();
    expect(view.sessions().map((s) => s.id)).toEqual([b.id]);
    expect(view.membershipKey).not.toBe(before);

    const changes = await view.refresh();
    expect(changes.all).toBe(true);
    expect(changes.keys.has('task/x')).toBe(true);
    expect((await view.refresh()).all).toBe(false);
  });

  it('tells a change that frees a key it knows held from one that does not', async () => {
    const { view, a } = await setup();
    expect(view.frees({ scope: 'owners', key: 'task/x', holder: null })).toBe(true);
    expect(view.frees({ scope: 'owners', key: 'task/y', holder: null })).toBe(false);
    expect(view.frees({ scope: 'owners', key: 'task/x' })).toBe(false);
    expect(view.frees({ scope: 'owners', endedSession: a.id })).toBe(false);
  });
});
