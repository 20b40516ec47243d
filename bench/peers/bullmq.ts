/**
 * Peer: BullMQ job scheduler `every: 1000` ms with 3 worker processes (concurrency 1 each), run for the
 * same duration as baton's tick test, one worker SIGKILLed every `killEveryMs` (the one that ran the
 * latest job, at a random point within the next second) and replaced. The scheduled time of a job is in
 * its id (`repeat:<scheduler>:<millis>`); lateness = handler start − that time. Duplicates: a scheduled
 * time handled twice; missed: scheduled times between the first and the last handled that never ran.
 */
import { ChildGroup } from '../children.js';
import type { Say } from '../util.js';
import { tickFidelity, type TickResult } from '../ticks.js';
import { jitter, progress, sleep, waitUntil } from '../util.js';

const connection = { host: '127.0.0.1', port: 6379 };
const PREFIX = 'bench-peer';

export async function runBullmqChild(c: { id: string; queue: string }, say: Say): Promise<void> {
  const { Worker } = await import('bullmq');
  const worker = new Worker(
    c.queue,
    async (job) => {
      const scheduled = Number(String(job.id).split(':').at(-1));
      say({ type: 'run', tick: scheduled, lateMs: Date.now() - scheduled, job: job.id });
    },
    { connection, prefix: PREFIX, concurrency: 1 },
  );
  worker.on('error', () => undefined);
  process.once('SIGTERM', () => {
    void worker.close().finally(() => process.exit(0));
  });
  await worker.waitUntilReady();
  say({ type: 'ready' });
}

export async function runBullmqTicks(run: string, durationMs: number, killEveryMs: number): Promise<TickResult> {
  const { Queue } = await import('bullmq');
  const name = `bench-${run}-bullmq`;
  const queue = new Queue(name, { connection, prefix: PREFIX });
  const group = new ChildGroup();
  let serial = 0;
  let kills = 0;
  const spawn = () => group.spawn(`bullmq-w${++serial}`, { kind: 'bullmq-worker', queue: name });
  try {
    await Promise.all([spawn(), spawn(), spawn()]);
    await queue.upsertJobScheduler('tick', { every: 1000 }, { name: 'tick', data: {} });
    await waitUntil('bullmq: first job', () => group.messages.some((m) => m.type === 'run'), 15_000);
    const start = Date.now();
    const end = start + durationMs;
    let nextKill = start + killEveryMs;
    while (Date.now() < end) {
      await sleep(Math.max(0, Math.min(end, nextKill) - Date.now()));
      if (Date.now() >= end) break;
      await sleep(jitter(1000));
      const last = group.messages.filter((m) => m.type === 'run').at(-1);
      const victim = last ? group.byId(last.node) : undefined;
      if (victim?.alive) {
        group.signal(victim, 'SIGKILL');
        kills += 1;
        progress(`bullmq ticks: killed worker ${victim.id}`);
        await victim.exited;
        void spawn().catch(() => undefined);
      }
      nextKill += killEveryMs;
    }
    const runs = group.messages.filter((m) => m.type === 'run' && m.at <= end).map((m) => ({ tick: m.tick as number, lateMs: m.lateMs as number, node: m.node }));
    return { ...tickFidelity(runs, 1000), kills, durationS: Math.round(durationMs / 1000), recordedMissed: 0 };
  } finally {
    await group.stopAll();
    await queue.removeJobScheduler('tick').catch(() => undefined);
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
  }
}
