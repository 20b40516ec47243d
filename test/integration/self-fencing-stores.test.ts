/**
 * A locally refused write ends the lease on every store (issue 18), on the system clock: a handler blocks
 * the event loop past its session's local deadline (the way a stopped process wakes: no timer of baton's
 * has run), then commits. The commit must be refused locally, without reaching the store, the run's
 * signal must be aborted by the time the handler sees the error, and the run must end `aborted`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createCluster } from '../../src/node/node.js';
import { sleep, systemClock } from '../../src/core/clock.js';
import { NotOwnerError } from '../../src/core/errors.js';
import { randomId } from '../../src/core/ids.js';
import { silentLogger } from '../../src/core/logger.js';
import type { RunRecord, TaskContext, TaskHandler } from '../../src/scheduler/task.js';
import { checkpointKey, runKey } from '../../src/scheduler/keys.js';
import type { UnitName } from '../../src/scheduler/names.js';
import { openStore } from '../../src/stores/open-store.js';
import { SERVER_BACKENDS } from '../helpers/backends.js';
import { recordingStore } from '../helpers/sim.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-selffence-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** TTL 3 s: the local deadline falls at most 2.4 s after a renewal was sent. */
const TTL_MS = 3000;
const BLOCK_MS = 2700;

/** Blocks the event loop: nothing else of this process runs meanwhile, as in a stopped process. */
function blockFor(ms: number): void {
  const until = systemClock.monotonic() + ms;
  while (systemClock.monotonic() < until) {
    // spin
  }
}

/** SQLite and every server store of the test machine (scripts/services.sh starts them). */
const TARGETS = [{ kind: 'sqlite', url: `sqlite:${join(dir, 'baton.db')}` }, ...SERVER_BACKENDS.map((b) => ({ kind: b.kind, url: b.url('127.0.0.1', b.port) }))];

describe.each(TARGETS)('a locally refused commit on $kind', ({ url }) => {
  it('is refused without reaching the store, aborts ctx.signal and ends the run aborted', async () => {
    const name = `selffence-${randomId(4)}`;
    const store = recordingStore(await openStore(url, { cluster: name }), systemClock);
    const observer = await openStore(url, { cluster: name });
    let runs = 0;
    let blockedRun: { tick: number; token: bigint; wokeAt: number } | undefined;
    const seen: { refused?: unknown; abortedAfter?: boolean; assertOwnerThrew?: boolean } = {};
    const handler = (async (ctx: TaskContext<string>) => {
      if (++runs !== 2) return;
      blockFor(BLOCK_MS);
      blockedRun = { tick: ctx.tick.getTime(), token: ctx.token, wokeAt: systemClock.monotonic() };
      try {
        await ctx.checkpoint.commit('from a woken zombie');
      } catch (error) {
        seen.refused = error;
        seen.abortedAfter = ctx.signal.aborted;
        try {
          ctx.assertOwner();
          seen.assertOwnerThrew = false;
        } catch {
          seen.assertOwnerThrew = true;
        }
        throw error;
      }
    }) as TaskHandler<never>;
    const cluster = await createCluster({ store: store.store, name, node: { id: 'a' }, ttl: TTL_MS, logger: silentLogger });
    cluster.task('cp', { every: '1s' }, handler);
    await cluster.start();
    try {
      const started = systemClock.monotonic();
      let record: RunRecord | undefined;
      while (systemClock.monotonic() - started < 15_000) {
        if (blockedRun) {
          record = (await observer.get<RunRecord>(runKey('cp' as UnitName, blockedRun.tick)))?.value;
          if (record && record.status !== 'running') break;
        }
        await sleep(systemClock, 50);
      }
      expect(blockedRun).toBeDefined();
      expect(seen.refused).toBeInstanceOf(NotOwnerError);
      expect((seen.refused as Error).message).toMatch(/local deadline passed/);
      expect(seen.abortedAfter).toBe(true);
      expect(seen.assertOwnerThrew).toBe(true);
      const sent = store.calls.filter(
        (c) => c.at >= blockedRun!.wokeAt && c.method === 'put' && (c.args[2] as { guard?: { token: bigint } } | undefined)?.guard?.token === blockedRun!.token,
      );
      expect(sent).toEqual([]);
      expect(record?.status).toBe('aborted');
      expect((await observer.get<{ value: string }>(checkpointKey('cp' as UnitName)))?.value.value).not.toBe('from a woken zombie');
    } finally {
      await cluster.close();
      await store.store.close();
      await observer.close();
    }
  }, 30_000);
});
