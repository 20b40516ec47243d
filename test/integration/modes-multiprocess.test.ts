/**
 * Every placement mode with three real node processes (test/helpers/modes-node.ts) on SQLite, PostgreSQL
 * and Redis: the preferred node n1 is SIGKILLed, then restarted. Checked from what the nodes printed and
 * from the store's run records:
 * - no unit starts a tick twice; every tick between a unit's first and last record is covered (run or missed);
 * - preferred: runs on n1 while it lives, elsewhere while it is dead, back on n1 after failbackAfter;
 * - round-robin: consecutive ticks on different nodes; mutex: once per tick; broadcast: every node;
 * - sharded: 4 shards over the nodes; dispatch: every enqueued item acknowledged (or still queued).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { randomId } from '../../src/core/ids.js';
import { openStore } from '../../src/stores/open-store.js';
import type { RunRecord } from '../../src/scheduler/task.js';
import { sqlitePostgresRedis } from '../helpers/backends.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-modes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TARGETS = sqlitePostgresRedis(dir);

interface Line {
  type: string;
  node: string;
  at: number;
  unit?: string;
  tick?: number;
  id?: string;
  outcome?: string;
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(TARGETS)('every mode, 3 processes on $kind', ({ url }) => {
  it('keeps each mode\'s promise through a SIGKILL and a restart of the preferred node', async () => {
    const cluster = `modes-${randomId(4)}`;
    const lines: Line[] = [];
    const children: ChildProcess[] = [];
    const start = (id: string): Promise<ChildProcess> => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/modes-node.ts', url, cluster, id], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(child);
      return new Promise((resolve, reject) => {
        createInterface({ input: child.stdout! }).on('line', (text) => {
          const line = JSON.parse(text) as Line;
          lines.push(line);
          if (line.type === 'ready') resolve(child);
        });
        child.once('exit', (code) => reject(new Error(`${id} exited with ${code} before it was ready`)));
      });
    };
    const exited = (child: ChildProcess) => (child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', r)));
    try {
      const [n1] = await Promise.all([start('n1'), start('n2'), start('n3')]);
      await wait(7000);
      const killedAt = Date.now();
      n1!.kill('SIGKILL');
      await exited(n1!);
      await wait(7000);
      const restartedAt = Date.now();
      await start('n1');
      await wait(8000);
      const endedAt = Date.now();
      for (const child of children) child.kill('SIGTERM');
      await Promise.all(children.map(exited));

      const runs = lines.filter((l) => l.type === 'run');
      const runsOf = (unit: string) => runs.filter((r) => r.unit === unit);
      // No unit started a tick twice.
      const starts = runs.map((r) => `${r.unit}@${r.tick}`);
      expect(starts.length - new Set(starts).size).toBe(0);

      // Preferred: on n1 while it lived (after start-up), never on n1 while dead, back on n1 after failbackAfter (2 s) + a tick.
      const pref = runsOf('pref');
      expect(pref.filter((r) => r.at > killedAt - 4000 && r.at < killedAt).every((r) => r.node === 'n1')).toBe(true);
      const whileDead = pref.filter((r) => r.at > killedAt + 500 && r.at < restartedAt);
      expect(whileDead.length).toBeGreaterThan(3);
      expect(whileDead.every((r) => r.node !== 'n1')).toBe(true);
      const failedBack = pref.filter((r) => r.at > restartedAt + 5000 && r.at < endedAt);
      expect(failedBack.length).toBeGreaterThan(1);
      expect(failedBack.every((r) => r.node === 'n1')).toBe(true);

      // Round-robin: with three nodes alive, ticks go round; never twice in a row on one node while two live.
      const rr = runsOf('rr').sort((a, b) => a.tick! - b.tick!);
      const phase1 = rr.filter((r) => r.at > killedAt - 5000 && r.at < killedAt).map((r) => r.node);
      expect(new Set(phase1).size).toBe(3);
      for (let i = 1; i < phase1.length; i++) expect(phase1[i]).not.toBe(phase1[i - 1]);
      const phase2 = rr.filter((r) => r.at > killedAt + 2000 && r.at < restartedAt).map((r) => r.node);
      expect(phase2.every((n) => n !== 'n1')).toBe(true);
      for (let i = 1; i < phase2.length; i++) expect(phase2[i]).not.toBe(phase2[i - 1]);

      // Broadcast: each node ran its own share while alive.
      for (const id of ['n1', 'n2', 'n3']) expect(runsOf(`bc@${id}`).length).toBeGreaterThan(5);
      expect(runs.filter((r) => r.unit?.startsWith('bc@')).every((r) => r.unit === `bc@${r.node}`)).toBe(true);
      // Sharded: four shards, spread over more than one node.
      for (let i = 0; i < 4; i++) expect(runsOf(`sh#${i}`).length).toBeGreaterThan(10);
      expect(new Set(runs.filter((r) => r.unit?.startsWith('sh#') && r.at < killedAt).map((r) => r.node)).size).toBeGreaterThan(1);
      expect(runsOf('mux').length).toBeGreaterThan(15);

      // Dispatch: every enqueued item was acknowledged, or is still queued (nothing lost).
      const enqueued = new Set(lines.filter((l) => l.type === 'enqueued').map((l) => l.id as string));
      const acked = new Set(lines.filter((l) => l.type === 'item' && l.outcome === 'succeeded').map((l) => l.id));
      expect(enqueued.size).toBeGreaterThan(30);

      const store = await openStore(url, { cluster });
      try {
        const queued = new Set((await store.list<{ id: string }>('queue/dq/')).map((r) => r.value.id));
        const lost = [...enqueued].filter((id) => !acked.has(id) && !queued.has(id));
        expect(lost).toEqual([]);
        // Every tick of the units with one owner at a time is covered: a run or a missed record.
        for (const unit of ['single', 'pref', 'mux', 'rr', 'sh#0', 'sh#1', 'sh#2', 'sh#3']) {
          const records = (await store.list<RunRecord>(`run/${unit}/`)).map((r) => r.value);
          let covered = 0;
          for (const r of records) covered += r.status === 'missed' ? (r.missed?.count ?? 0) : 1;
          const first = records[0]!.tick;
          const last = records.at(-1)!.tick;
          expect(covered, `${unit}: ${records.length} records`).toBe((last - first) / 1000 + 1);
          expect(records.filter((r) => r.status === 'running')).toEqual([]);
        }
      } finally {
        for (const prefix of ['run/', 'checkpoint/', 'decl/', 'declv/', 'queue/', 'dead/', 'trigger/']) {
          await store.deleteBefore(prefix, `${prefix}\uffff`);
        }
        await store.close();
      }
    } finally {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }, 90_000);
});
