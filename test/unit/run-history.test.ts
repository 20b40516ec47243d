/**
 * Run history for people (src/monitor/run-history.ts) on the memory store and a real SQLite file: newest
 * first across a task's units, pages joined by a cursor that neither repeats nor skips a run, filters by
 * status, node and time, a trigger run sharing a millisecond with a scheduled tick, and lookup by id.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { randomId } from '../../src/core/ids.js';
import { decodeCursor, readRun, readRunHistory, type HistoryRun } from '../../src/monitor/run-history.js';
import { runKey, triggerRunKey } from '../../src/scheduler/keys.js';
import type { TaskName, UnitName } from '../../src/scheduler/names.js';
import type { RunRecord } from '../../src/scheduler/task.js';
import type { Store } from '../../src/stores/contract.js';
import { openStore } from '../../src/stores/open-store.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-run-history-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T0 = 1_700_000_000_000;
const task = 'report' as TaskName;
const units = ['report#0', 'report#1'] as UnitName[];

/** 30 runs on two shards, a second apart, alternating between two nodes; every 5th failed, every 7th missed. */
async function seed(store: Store): Promise<RunRecord[]> {
  const written: RunRecord[] = [];
  for (let i = 0; i < 30; i++) {
    const unit = units[i % 2] as UnitName;
    const tick = T0 + i * 1000;
    const onA = i % 2 === 0;
    const status = i % 7 === 0 ? 'missed' : i % 5 === 0 ? 'failed' : 'succeeded';
    const run: RunRecord =
      status === 'missed'
        ? { task, unit, tick, status, missed: { from: tick, count: 1, reason: 'no-owner' } }
        : { task, unit, tick, status, node: onA ? 'node-a' : 'node-b', host: onA ? 'h1' : 'h2', pid: onA ? 11 : 22, token: String(i), durationMs: 5, ...(status === 'failed' ? { error: 'boom' } : {}) };
    await store.put(runKey(unit, tick), run);
    written.push(run);
  }
  return written;
}

const STORES = [
  { kind: 'memory', open: () => openStore(`memory:history-${randomId(4)}`, { cluster: 'c' }) },
  { kind: 'sqlite', open: () => openStore(`sqlite:${join(dir, `${randomId(4)}.db`)}`, { cluster: 'c' }) },
];

describe.each(STORES)('run history on $kind', ({ open }) => {
  it('pages newest first over every unit, without repeating or skipping a run', async () => {
    const store = await open();
    try {
      const written = await seed(store);
      const seen: HistoryRun[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await readRunHistory(store, { units, limit: 7, ...(cursor ? { cursor } : {}) });
        expect(page.runs.length).toBeLessThanOrEqual(7);
        seen.push(...page.runs);
        cursor = page.next;
        pages++;
      } while (cursor !== undefined);
      expect(pages).toBe(5);
      expect(seen.map((r) => r.tick)).toEqual(written.map((r) => r.tick).sort((a, b) => b - a));
      expect(seen[0]?.id).toBe(`report#1/${T0 + 29_000}`);
    } finally {
      await store.close();
    }
  });

  it('filters by status, node and time range, and pages within the filter', async () => {
    const store = await open();
    try {
      await seed(store);
      const failed = await readRunHistory(store, { units, limit: 100, statuses: new Set(['failed']) });
      expect(failed.runs.map((r) => (r.tick - T0) / 1000)).toEqual([25, 20, 15, 10, 5]);
      expect(failed.next).toBeUndefined();
      const first = await readRunHistory(store, { units, limit: 2, statuses: new Set(['failed']) });
      expect(first.runs.map((r) => (r.tick - T0) / 1000)).toEqual([25, 20]);
      const second = await readRunHistory(store, { units, limit: 2, statuses: new Set(['failed']), cursor: first.next! });
      expect(second.runs.map((r) => (r.tick - T0) / 1000)).toEqual([15, 10]);
      const third = await readRunHistory(store, { units, limit: 2, statuses: new Set(['failed']), cursor: second.next! });
      expect(third.runs.map((r) => (r.tick - T0) / 1000)).toEqual([5]);
      expect(third.next).toBeUndefined();

      for (const node of ['node-b', 'h2', 'h2:22']) {
        const page = await readRunHistory(store, { units, limit: 100, node });
        expect(page.runs.length, node).toBe(13);
        expect(new Set(page.runs.map((r) => r.node)), node).toEqual(new Set(['node-b']));
      }
      const window = await readRunHistory(store, { units, limit: 100, from: T0 + 10_000, to: T0 + 15_000 });
      expect(window.runs.map((r) => (r.tick - T0) / 1000)).toEqual([14, 13, 12, 11, 10]);
    } finally {
      await store.close();
    }
  });

  it('orders a trigger run and a scheduled tick of the same millisecond, and finds a run by its id', async () => {
    const store = await open();
    try {
      const unit = 'sync' as UnitName;
      const sync = 'sync' as TaskName;
      const tick = T0 + 5000;
      await store.put(runKey(unit, tick), { task: sync, unit, tick, status: 'succeeded' } satisfies RunRecord);
      const triggerId = `${String(tick).padStart(15, '0')}-abc123`;
      await store.put(triggerRunKey(unit, triggerId), { task: sync, unit, tick, status: 'failed', trigger: true, triggerId } satisfies RunRecord);
      await store.put(runKey(unit, tick - 1000), { task: sync, unit, tick: tick - 1000, status: 'succeeded' } satisfies RunRecord);
      const one = await readRunHistory(store, { units: [unit], limit: 1 });
      const two = await readRunHistory(store, { units: [unit], limit: 1, cursor: one.next! });
      const three = await readRunHistory(store, { units: [unit], limit: 1, cursor: two.next! });
      expect([one, two, three].map((p) => p.runs[0]?.id)).toEqual([`sync/${tick}-abc123`, `sync/${tick}`, `sync/${tick - 1000}`]);
      expect(three.next).toBeUndefined();
      expect((await readRun(store, `sync/${tick}-abc123`))?.trigger).toBe(true);
      expect((await readRun(store, `sync/${tick}`))?.status).toBe('succeeded');
      expect(await readRun(store, `sync/${tick + 1}`)).toBeUndefined();
    } finally {
      await store.close();
    }
  });
});

it('refuses a cursor it did not write, naming it', () => {
  expect(() => decodeCursor('bm90LWEtY3Vyc29y')).toThrow(/cursor: not a cursor of this API/);
  expect(() => decodeCursor('%%%')).toThrow(/cursor/);
});
