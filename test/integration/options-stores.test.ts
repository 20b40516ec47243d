/**
 * The task options on real stores (SQLite, PostgreSQL, Redis), two nodes in one process on the system
 * clock: retries, timeout, dependencies, a shared concurrency limit, manual trigger, pause and resume.
 * Assertions are on outcomes and on the store's run records, not on timings.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createCluster, type Cluster } from '../../src/node/node.js';
import { sleep, systemClock } from '../../src/core/clock.js';
import { randomId } from '../../src/core/ids.js';
import { silentLogger } from '../../src/core/logger.js';
import type { RunRecord, TaskContext, TaskOptions } from '../../src/scheduler/task.js';
import { openStore } from '../../src/stores/open-store.js';
import { sqlitePostgresRedis } from '../helpers/backends.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-options-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const TARGETS = sqlitePostgresRedis(dir);

describe.each(TARGETS)('task options on $kind', ({ url }) => {
  it('retries, times out, waits for dependencies, shares a concurrency limit, runs triggers, pauses', async () => {
    const name = `opts-${randomId(4)}`;
    const intervals: { task: string; start: number; end: number }[] = [];
    const attempts = new Map<string, number>();
    const busy = (ms: number) => async (ctx: TaskContext) => {
      const start = Date.now();
      await sleep(systemClock, ms, ctx.signal);
      intervals.push({ task: ctx.task, start, end: Date.now() });
    };
    const tasks: [string, TaskOptions, (ctx: TaskContext) => Promise<void> | void][] = [
      ['flaky', { every: '1s', retries: 2, retryBackoff: '100ms' }, (ctx) => {
        attempts.set(`${ctx.tick.getTime()}`, ctx.attempt);
        if (ctx.attempt === 1) throw new Error('first attempt fails');
      }],
      ['hangs', { every: '2s', timeout: '200ms' }, (ctx) => sleep(systemClock, 10_000, ctx.signal)],
      ['extract', { every: '1s' }, busy(150)],
      ['load', { every: '1s', dependsOn: 'extract' }, busy(10)],
      ['report-a', { every: '1s', concurrency: 1, concurrencyGroup: 'reports' }, busy(300)],
      ['report-b', { every: '1s', concurrency: 1, concurrencyGroup: 'reports' }, busy(300)],
      ['manual', { at: '2099-01-01T00:00:00Z' }, () => undefined],
      ['pausable', { every: '500ms' }, () => undefined],
    ];
    const nodes: Cluster[] = [];
    for (const id of ['a', 'b']) {
      const cluster = await createCluster({ store: url, name, node: { id }, ttl: '3s', logger: silentLogger });
      for (const [task, options, handler] of tasks) cluster.task(task, options, handler);
      await cluster.start();
      nodes.push(cluster);
    }
    const [a, b] = nodes as [Cluster, Cluster];
    const store = await openStore(url, { cluster: name });
    const records = async (task: string) => (await store.list<RunRecord>(`run/${task}/`)).map((r) => r.value);
    try {
      await sleep(systemClock, 1500);
      const triggerId = await b.trigger('manual');
      await a.pause('pausable');
      await sleep(systemClock, 4000);
      const pausedRecords = await records('pausable');
      await a.resume('pausable');
      await sleep(systemClock, 1500);

      // Retries: every finished tick of "flaky" succeeded on its second attempt.
      const flaky = (await records('flaky')).filter((r) => r.status !== 'running');
      expect(flaky.length).toBeGreaterThan(3);
      expect(flaky.every((r) => r.status === 'succeeded' && r.attempts === 2)).toBe(true);
      // Timeout: the hanging handler's runs end timed-out (its signal aborted), not after 10 s.
      const hangs = (await records('hangs')).filter((r) => r.status !== 'running');
      expect(hangs.length).toBeGreaterThan(1);
      expect(hangs.every((r) => r.status === 'timed-out' && (r.durationMs ?? 0) < 2000)).toBe(true);
      // Dependencies: each "load" run started after the "extract" run of the same tick succeeded.
      const extract = new Map((await records('extract')).map((r) => [r.tick, r]));
      const load = (await records('load')).filter((r) => r.status === 'succeeded');
      expect(load.length).toBeGreaterThan(3);
      for (const r of load) {
        const before = extract.get(r.tick);
        expect(before?.status).toBe('succeeded');
        expect(r.startedAt!).toBeGreaterThanOrEqual(before!.endedAt!);
      }
      // Concurrency 1 across the group and the nodes: report runs never overlap.
      const reports = intervals.filter((i) => i.task.startsWith('report-')).sort((x, y) => x.start - y.start);
      expect(reports.length).toBeGreaterThan(4);
      for (let i = 1; i < reports.length; i++) expect(reports[i]!.start).toBeGreaterThanOrEqual(reports[i - 1]!.end);
      // Trigger from another node: run once, recorded as a trigger.
      const manual = await records('manual');
      expect(manual.map((r) => [r.trigger, r.triggerId, r.status])).toEqual([[true, triggerId, 'succeeded']]);
      // Pause: while paused, ticks went into one growing "missed (paused)" record; after resume it runs.
      const paused = pausedRecords.filter((r) => r.status === 'missed' && r.missed?.reason === 'paused');
      expect(paused).toHaveLength(1);
      expect(paused[0]!.missed!.count).toBeGreaterThanOrEqual(5);
      const after = (await records('pausable')).filter((r) => r.tick > paused[0]!.tick);
      expect(after.some((r) => r.status === 'succeeded')).toBe(true);
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
      for (const prefix of ['run/', 'checkpoint/', 'decl/', 'declv/', 'trigger/', 'pause/', 'slot/']) await store.deleteBefore(prefix, `${prefix}\uffff`);
      await store.close();
    }
  }, 30_000);
});
