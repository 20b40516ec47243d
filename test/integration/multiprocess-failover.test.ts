/**
 * Three real node processes (the `baton demo` scenario) on every store: the owner of a task is SIGKILLed
 * in the middle of a run, the next owner SIGTERMed. Asserts takeover and no tick started twice, and from
 * the store itself: every tick between a task's first and last record is covered exactly once (a run, or
 * counted in a "missed" record), no run is left "running", and fencing tokens never go backwards.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { randomId } from '../../src/core/ids.js';
import { openStore } from '../../src/stores/open-store.js';
import type { RunRecord } from '../../src/scheduler/task.js';
import { SERVER_BACKENDS } from '../helpers/backends.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'baton-mp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TARGETS = [
  { kind: 'sqlite', url: `sqlite:${join(dir, 'baton.db')}`, crashDetection: true },
  ...SERVER_BACKENDS.map((b) => ({ kind: b.kind, url: b.url('127.0.0.1', b.port), crashDetection: true })),
];
const TASKS = [
  ['sync-orders', 1000],
  ['refresh-prices', 1000],
  ['retry-failed', 2000],
  ['send-digest', 3000],
] as const;

describe.each(TARGETS)('3 processes on $kind', ({ kind, url, crashDetection }) => {
  it('takes over after SIGKILL and SIGTERM without running a tick twice or losing one', async () => {
    const cluster = `mp-${randomId(4)}`;
    const { stdout } = await run(
      process.execPath,
      ['dist/cli/main.js', 'demo', '--json', '--act-seconds', '2', '--store', url, '--cluster', cluster],
      { timeout: 120_000 },
    );
    const summary = JSON.parse(stdout.trim().split('\n').at(-1) as string) as Record<string, number | string>;
    expect(summary).toMatchObject({ store: kind, nodes: 3, duplicateTicks: 0 });
    // Where a crash is detected at once, the takeover is faster than the 1 s interval: nothing is missed.
    // On etcd (lease TTL only) the ticks of the failover gap are recorded as missed instead: checked below.
    if (crashDetection) expect(summary.missedTicks).toBe(0);
    expect(summary.crashTakeoverMs).toBeGreaterThan(0);
    expect(summary.gracefulTakeoverMs).toBeGreaterThan(0);
    expect(summary.ticksRun).toBeGreaterThan(10);

    const store = await openStore(url, { cluster });
    try {
      expect(await store.listSessions()).toEqual([]); // every node closed or was reaped
      for (const [task, intervalMs] of TASKS) {
        const records = (await store.list<RunRecord>(`run/${task}/`)).map((r) => r.value);
        // The demo acts for three 2 s phases: a 3 s task gets only a few ticks, and on a loaded machine as
        // few as two records (CI saw 2 on ZooKeeper). Two are enough to check the coverage between them.
        expect(records.length).toBeGreaterThanOrEqual(intervalMs >= 3000 ? 2 : 3);
        let covered = 0;
        for (let i = 0; i < records.length; i++) {
          const r = records[i] as RunRecord;
          covered += r.status === 'missed' ? (r.missed?.count ?? 0) : 1;
          expect(r.status).not.toBe('running'); // an interrupted run is marked by the next owner
          const previous = records[i - 1];
          if (r.token && previous?.token) expect(BigInt(r.token) >= BigInt(previous.token)).toBe(true);
        }
        const first = (records[0] as RunRecord).tick;
        const last = (records.at(-1) as RunRecord).tick;
        expect(covered).toBe((last - first) / intervalMs + 1);
      }
      const watched = (await store.list<RunRecord>('run/sync-orders/')).map((r) => r.value);
      expect(watched.some((r) => r.status === 'aborted' && r.error?.startsWith('interrupted'))).toBe(true);
      expect(new Set(watched.map((r) => r.node)).size).toBeGreaterThanOrEqual(2);
    } finally {
      // Leave nothing behind on the shared servers.
      for (const prefix of ['run/', 'checkpoint/', 'decl/']) await store.deleteBefore(prefix, `${prefix}\uffff`);
      await store.close();
    }
  });
});
