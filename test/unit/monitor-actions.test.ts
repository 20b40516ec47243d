/**
 * Write actions over the monitor's API (memory store, FakeClock, real HTTP on loopback): refused from
 * another Origin and with the cookie alone, accepted with the header; each one acts on the cluster and is
 * recorded with who (the token label), from where (the remote address) and when, reported as a
 * `task:action` event and listed by `GET /api/events/recent` — as are controls sent by a node.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/logger.js';
import { startMonitor, type Monitor } from '../../src/monitor/monitor.js';
import type { StampedEvent } from '../../src/monitor/monitor-events.js';
import { recentActions } from '../../src/scheduler/controls.js';
import { Sim } from '../helpers/sim.js';

let sim: Sim;
const monitors: Monitor[] = [];
afterEach(async () => {
  await Promise.all(monitors.splice(0).map((m) => m.close()));
  await sim?.closeAll();
});

const TOKEN = 'a-token-of-the-tests-0001';

describe('monitor write actions', () => {
  it('refuses other origins, records who acted from where, and reports it as an event', async () => {
    sim = new Sim();
    const node = await sim.node('a', [['report', { every: '1s' }]]);
    await sim.advance(2000);
    const monitor = await startMonitor({ store: sim.backend.connect('sim'), clock: sim.clock, logger: silentLogger, listen: '127.0.0.1:0', token: TOKEN, tokenLabel: 'ops-team', alerts: false, pollEvery: 100 });
    monitors.push(monitor);
    const events: StampedEvent[] = [];
    monitor.on((e) => events.push(e));
    const base = monitor.url as string;
    const post = (path: string, headers: Record<string, string>) => fetch(new URL(path, base), { method: 'POST', headers });
    const auth = { Authorization: `Bearer ${TOKEN}` };

    const foreign = await post('/api/tasks/report/pause', { ...auth, Origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    expect(((await foreign.json()) as { error: string }).error).toContain('another origin');
    expect((await post('/api/tasks/report/pause', { Cookie: `baton_token=${TOKEN}` })).status).toBe(401);
    expect(await recentActions(sim.backend.connect('sim'), 10)).toEqual([]);

    // The page's own origin (what a browser sends from the dashboard) and no Origin (the CLI) are accepted.
    const sameOrigin = await post('/api/tasks/report/pause', { ...auth, Origin: base.replace(/\/$/, '') });
    expect(sameOrigin.status).toBe(200);
    expect(monitor.status()?.tasks.find((t) => t.task === 'report')?.paused).toBe(true);
    const trigger = await post('/api/tasks/report/trigger', auth);
    expect(trigger.status).toBe(200);
    const { trigger: triggerId } = (await trigger.json()) as { trigger: string };

    const actions = events.filter((e) => e.type === 'task:action');
    expect(actions.map((e) => (e.type === 'task:action' ? [e.task, e.action.action, e.action.by, e.action.address] : []))).toEqual([
      ['report', 'pause', 'ops-team', '127.0.0.1'],
      ['report', 'trigger', 'ops-team', '127.0.0.1'],
    ]);
    const last = actions[1];
    expect(last?.type === 'task:action' && last.action.trigger).toBe(triggerId);
    expect(last?.type === 'task:action' && last.action.at).toBe(sim.clock.now());

    // A control from a node is recorded too, with `node` as who.
    await node.cluster.resume('report');
    await monitor.refresh();
    const recent = await fetch(new URL('/api/events/recent?limit=50', base), { headers: auth });
    const listed = ((await recent.json()) as { events: StampedEvent[] }).events.filter((e) => e.type === 'task:action');
    expect(listed.map((e) => (e.type === 'task:action' ? `${e.action.action} by ${e.action.by}` : ''))).toEqual(['pause by ops-team', 'trigger by ops-team', 'resume by node']);
    expect((await fetch(new URL('/api/events/recent?limit=0', base), { headers: auth })).status).toBe(400);
    expect((await fetch(new URL('/api/events/recent', base))).status).toBe(401);
  });

  it('pages /api/runs by cursor, filters it, finds a run by id, and refuses bad queries with the reason', async () => {
    sim = new Sim();
    let n = 0;
    await sim.node('a', [['report', { every: '1s' }, () => {
      if (++n % 3 === 0) throw new Error('every third fails');
    }]]);
    await sim.advance(12_000);
    const monitor = await startMonitor({ store: sim.backend.connect('sim'), clock: sim.clock, logger: silentLogger, listen: '127.0.0.1:0', token: TOKEN, alerts: false, pollEvery: 100 });
    monitors.push(monitor);
    const get = async (query: string) => {
      const res = await fetch(new URL(`/api/runs?${query}`, monitor.url), { headers: { Authorization: `Bearer ${TOKEN}` } });
      return { status: res.status, body: (await res.json()) as { runs: { id: string; tick: number; status: string }[]; next?: string; error?: string } };
    };
    const all = await get('task=report&limit=1000');
    expect(all.body.next).toBeUndefined();
    const walked: number[] = [];
    for (let cursor: string | undefined, pages = 0; pages === 0 || cursor; pages++) {
      const page = await get(`task=report&limit=4${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      walked.push(...page.body.runs.map((r) => r.tick));
      cursor = page.body.next;
    }
    expect(walked).toEqual(all.body.runs.map((r) => r.tick));
    expect(walked.length).toBeGreaterThanOrEqual(10);
    const failed = await get('task=report&outcome=failed');
    expect(failed.body.runs.length).toBeGreaterThanOrEqual(3);
    expect(failed.body.runs.every((r) => r.status === 'failed')).toBe(true);
    const newest = all.body.runs[0]!;
    const window = await get(`task=report&from=${new Date(newest.tick - 2000).toISOString()}&to=${newest.tick}`);
    expect(window.body.runs.map((r) => r.tick)).toEqual([newest.tick - 1000, newest.tick - 2000]);
    expect((await get('task=report&node=a')).body.runs.length).toBe(all.body.runs.filter((r) => r.status !== 'missed').length);
    expect((await get(`id=${encodeURIComponent(newest.id)}`)).body.runs[0]?.tick).toBe(newest.tick);

    for (const [query, status, message] of [
      ['task=report&outcome=bogus', 400, 'outcome: unknown "bogus"'],
      ['task=report&cursor=zzz', 400, 'cursor: not a cursor of this API'],
      ['task=report&from=yesterday', 400, 'from: expected ms since the epoch or an ISO 8601 time'],
      ['task=report&before=1', 400, 'unknown query parameter "before"'],
      ['id=report%2F123', 404, 'run "report/123": not in the store'],
      ['id=nope', 400, 'run id: expected'],
    ] as const) {
      const res = await get(query);
      expect(res.status, query).toBe(status);
      expect(res.body.error, query).toContain(message);
    }
  });
});
