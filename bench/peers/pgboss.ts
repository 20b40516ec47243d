/**
 * Peer: pg-boss `schedule()` — cron with minute granularity (its cron parser has no seconds field).
 * 3 pg-boss processes (default settings: cron monitor every 30 s, cron worker every 5 s, job polling
 * every 2 s) on their own schema share a `* * * * *` schedule; one process is SIGKILLed and replaced each
 * minute. It runs in the background during the rest of the bench (it costs a few queries a second), so it
 * sees as many minute ticks as the bench lasts. Lateness = handler start − the minute boundary;
 * duplicates: a minute handled twice; missed: minutes between the first and last handled never handled.
 */
import { ChildGroup } from '../children.js';
import type { Say } from '../util.js';
import { tickFidelity, type TickResult } from '../ticks.js';
import { jitter, progress, sleep } from '../util.js';

export const PGBOSS_SCHEMA = 'pgboss_bench';

export async function runPgBossChild(c: { id: string; url: string; queue: string }, say: Say): Promise<void> {
  const { default: PgBoss } = await import('pg-boss');
  const boss = new PgBoss({ connectionString: c.url, schema: PGBOSS_SCHEMA });
  boss.on('error', () => undefined);
  await boss.start();
  await boss.createQueue(c.queue).catch(() => undefined);
  await boss.schedule(c.queue, '* * * * *', {}, { tz: 'UTC' });
  await boss.work(c.queue, async (jobs) => {
    for (const job of jobs) {
      const at = Date.now();
      const minute = Math.floor(at / 60_000) * 60_000;
      say({ type: 'run', tick: minute, lateMs: at - minute, job: job.id });
    }
  });
  process.once('SIGTERM', () => {
    void boss.stop({ graceful: true, wait: true, timeout: 3000 }).finally(() => process.exit(0));
  });
  say({ type: 'ready' });
}

/** Starts the background pg-boss run; `finish()` stops it and returns what it saw. */
export function startPgBossBackground(url: string, run: string, killEveryMs = 60_000): { ready: Promise<void>; finish(): Promise<TickResult & { note: string }> } {
  const group = new ChildGroup();
  const queue = `bench-${run}-cron`;
  let serial = 0;
  let kills = 0;
  let stopped = false;
  const spawn = () => group.spawn(`pgboss-${++serial}`, { kind: 'pgboss', url, queue }, 60_000);
  const started = Date.now();
  let readyAt = Number.POSITIVE_INFINITY;
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const loop = (async () => {
    try {
      await spawn();
      readyAt = Date.now();
      await Promise.all([spawn(), spawn()]);
    } finally {
      markReady();
    }
    let nextKill = Date.now() + killEveryMs;
    // Bounded: at most 4 h, and stops when finish() is called.
    while (!stopped && Date.now() - started < 4 * 3600_000) {
      await sleep(200);
      if (Date.now() < nextKill) continue;
      nextKill += killEveryMs;
      await sleep(jitter(1000));
      const live = group.live();
      const victim = live[jitter(live.length)];
      if (!victim || stopped) continue;
      group.signal(victim, 'SIGKILL');
      kills += 1;
      await victim.exited;
      await spawn().catch(() => undefined);
    }
  })().catch((error: unknown) => progress(`pg-boss background: ${String(error)}`));
  return {
    ready,
    async finish() {
      stopped = true;
      await loop;
      const end = Date.now();
      await group.stopAll();
      // At start pg-boss sends the minute that began before it started (late by design): not a tick it kept.
      const runs = group.messages.filter((m) => m.type === 'run' && (m.tick as number) >= readyAt).map((m) => ({ tick: m.tick as number, lateMs: m.lateMs as number, node: m.node }));
      const fidelity = tickFidelity(runs, 60_000);
      return {
        ...fidelity,
        kills,
        durationS: Math.round((end - started) / 1000),
        recordedMissed: 0,
        note:
          (runs.length === 0 ? 'no minute tick was handled while the bench ran (needs > 1 min). ' : '') +
          'defaults: cron monitor 30 s, cron worker 5 s, polling 2 s; minute granularity; the minute that began before start is sent at start and not counted',
      };
    },
  };
}

export async function cleanupPgBoss(url: string): Promise<void> {
  const pg = (await import('pg')).default;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${PGBOSS_SCHEMA} CASCADE`);
  } finally {
    await client.end();
  }
}
