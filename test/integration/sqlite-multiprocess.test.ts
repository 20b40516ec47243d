/**
 * Three real node processes on one SQLite file (the `baton demo` scenario): the owner of a task is
 * SIGKILLed in the middle of a run, the next owner SIGTERMed. Asserts takeover, no tick started twice, and
 * from the store itself: every tick between a task's first and last run has exactly one record (run or
 * missed), and fencing tokens never go backwards from one tick to the next.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/stores/sqlite/sqlite-store.js';
import type { RunRecord } from '../../src/scheduler/task.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'baton-mp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('3 processes on SQLite', () => {
  it('takes over after SIGKILL and SIGTERM without running a tick twice', async () => {
    const file = join(dir, 'baton.db');
    const { stdout } = await run(process.execPath, ['dist/cli/main.js', 'demo', '--json', '--act-seconds', '2', '--file', file], {
      timeout: 90_000,
    });
    const summary = JSON.parse(stdout.trim().split('\n').at(-1) as string) as Record<string, number | string>;
    expect(summary).toMatchObject({ store: 'sqlite', nodes: 3, duplicateTicks: 0, missedTicks: 0 });
    expect(summary.crashTakeoverMs).toBeGreaterThan(0);
    expect(summary.gracefulTakeoverMs).toBeGreaterThan(0);
    expect(summary.ticksRun).toBeGreaterThan(10);

    const store = await SqliteStore.open({ file, cluster: 'demo' });
    try {
      expect(await store.listSessions()).toEqual([]); // every node closed or was reaped
      for (const [task, intervalMs] of [['sync-orders', 1000], ['refresh-prices', 1000], ['retry-failed', 2000], ['send-digest', 3000]] as const) {
        const records = (await store.list<RunRecord>(`run/${task}/`)).map((r) => r.value);
        expect(records.length).toBeGreaterThan(2);
        let covered = 0;
        for (let i = 0; i < records.length; i++) {
          const r = records[i] as RunRecord;
          covered += r.status === 'missed' ? (r.missed?.count ?? 0) : 1;
          expect(r.status).not.toBe('running'); // an interrupted run is marked by the next owner
          if (i > 0) {
            const previous = records[i - 1] as RunRecord;
            if (r.token && previous.token) expect(BigInt(r.token) >= BigInt(previous.token)).toBe(true);
          }
        }
        const first = (records[0] as RunRecord).tick;
        const last = (records.at(-1) as RunRecord).tick;
        expect(covered).toBe((last - first) / intervalMs + 1);
      }
      const watched = (await store.list<RunRecord>('run/sync-orders/')).map((r) => r.value);
      expect(watched.some((r) => r.status === 'aborted' && r.error?.startsWith('interrupted'))).toBe(true);
      expect(new Set(watched.map((r) => r.node)).size).toBeGreaterThanOrEqual(2);
    } finally {
      await store.close();
    }
  });
});
