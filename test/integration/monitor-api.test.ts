/**
 * `baton serve` as a real process against a live cluster of three node processes, on SQLite and
 * PostgreSQL: the token guards every route (401 and no data without it; writes want the header), the
 * JSON API answers and rejects bad queries (400) and unknown tasks (404), the event stream reports a
 * SIGKILLed owner's hand-over, pause / resume / trigger act on the cluster, and /metrics counts what ran.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { randomId } from '../../src/core/ids.js';
import type { MonitorStatus } from '../../src/monitor/monitor-events.js';
import type { RunRecord } from '../../src/scheduler/task.js';
import { SERVER_BACKENDS } from '../helpers/backends.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-monitor-api-'));
const postgres = SERVER_BACKENDS.find((b) => b.kind === 'postgres')!;
const TARGETS = [
  { kind: 'sqlite', url: `sqlite:${join(dir, 'baton.db')}` },
  { kind: 'postgres', url: postgres.url('127.0.0.1', postgres.port) },
];
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Spawns a process and resolves with the first stdout line `ready` accepts. */
function spawnUntil(args: string[], env: NodeJS.ProcessEnv, ready: (line: string) => boolean): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (ready(line)) resolve({ child, line });
    });
    child.once('exit', (code, signal) => reject(new Error(`${args.join(' ')} exited (${code ?? signal}) before it was ready`)));
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await wait(100);
  }
}

describe.each(TARGETS)('baton serve on $kind', ({ url: storeUrl }) => {
  it('serves status, runs, events, controls and metrics to the token holder only', async () => {
    const cluster = `mon-${randomId(4)}`;
    const token = `tok-${randomId(12)}`;
    const nodes = new Map<string, { child: ChildProcess; pid: number }>();
    for (const id of ['node-a', 'node-b', 'node-c']) {
      const { child, line } = await spawnUntil(['test/e2e/dashboard-node.ts', storeUrl, cluster, id], {}, (l) => l.includes('"ready"'));
      nodes.set(id, { child, pid: (JSON.parse(line) as { pid: number }).pid });
    }
    const serve = await spawnUntil(
      ['src/cli/main.ts', 'serve', '--store', storeUrl, '--cluster', cluster, '--listen', '127.0.0.1:0', '--poll', '200ms'],
      { BATON_TOKEN: token },
      (l) => l.startsWith('baton monitor'),
    );
    expect(serve.line).not.toContain(token);
    const base = /on (http:\/\/\S+\/)/.exec(serve.line)![1]!;
    const auth = { Authorization: `Bearer ${token}` };
    const get = (path: string, headers: Record<string, string> = auth) => fetch(new URL(path, base), { headers, redirect: 'manual' });
    const post = (path: string, headers: Record<string, string> = auth) => fetch(new URL(path, base), { method: 'POST', headers });
    const status = async (): Promise<MonitorStatus> => (await (await get('/api/status')).json()) as MonitorStatus;

    const first = await until('3 nodes and an owner for every task', async () => {
      const s = await status();
      // `export` runs hourly (or when triggered): an owner, no run yet.
      return s.nodes.length === 3 && s.tasks.length === 4 && s.tasks.every((t) => t.owner && (t.lastRun || t.unit === 'export')) ? s : undefined;
    });
    expect(first.tasks.map((t) => t.unit)).toEqual(['cleanup', 'export', 'report', 'sync']);
    // Every time in the API is a number of ms since the epoch, the owner's `since` included.
    for (const t of first.tasks) expect(typeof t.owner?.since, t.unit).toBe('number');
    expect(first.monitors).toHaveLength(1);

    // Auth: no data without the token, on every route; the page's cookie is not enough for writes.
    for (const path of ['/api/status', '/api/runs', '/api/events', '/metrics']) {
      for (const headers of [{}, { Authorization: 'Bearer wrong-token-000000' }] as Record<string, string>[]) {
        const res = await get(path, headers);
        expect(res.status, path).toBe(401);
        expect(res.headers.get('www-authenticate'), path).toBe('Bearer realm="baton"');
        expect(Object.keys((await res.json()) as object)).toEqual(['error']);
      }
    }
    expect((await get('/', {})).status).toBe(401);
    expect(await (await get('/', {})).text()).not.toContain('cleanup');
    const login = await get(`/?token=${token}`, {});
    expect(login.status).toBe(303);
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
    expect(login.headers.get('set-cookie')).toMatch(/HttpOnly; SameSite=Strict/);
    const page = await get('/', { Cookie: cookie });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect((await get('/api/status', { Cookie: cookie })).status).toBe(200);
    expect((await post('/api/tasks/report/pause', { Cookie: cookie })).status).toBe(401);

    // Runs and bad queries.
    const runs = await until('5 runs of sync', async () => {
      const body = (await (await get('/api/runs?task=sync&limit=5')).json()) as { runs: RunRecord[] };
      return body.runs.length === 5 ? body.runs : undefined;
    });
    expect(runs.map((r) => r.tick)).toEqual([...runs.map((r) => r.tick)].sort((a, b) => b - a));
    expect(new Set(runs.map((r) => r.task))).toEqual(new Set(['sync']));
    expect((await get('/api/runs?task=nope')).status).toBe(404);
    for (const bad of ['/api/runs?limit=0', '/api/runs?limit=5000', '/api/runs?limit=x', '/api/runs?color=red', '/api/runs?task=%3Cb%3E']) {
      const res = await get(bad);
      expect(res.status, bad).toBe(400);
      expect(((await res.json()) as { error: string }).error.length).toBeGreaterThan(10);
    }
    expect((await get('/api/nothing')).status).toBe(404);
    expect((await get('/api/tasks/report/pause')).status).toBe(405);

    // The event stream: after the owner of `report` is SIGKILLed, it reports the new owner.
    const stream = await get('/api/events');
    expect(stream.headers.get('content-type')).toContain('text/event-stream');
    const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    const events: { event: string; data: Record<string, unknown> }[] = [];
    const pump = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.+)$/m.exec(block)?.[1];
          const data = /^data: (.+)$/m.exec(block)?.[1];
          if (event && data) events.push({ event, data: JSON.parse(data) as Record<string, unknown> });
        }
      }
    })();
    await until('the first status on the stream', async () => (events.some((e) => e.event === 'status') ? true : undefined));
    const owner = (await status()).tasks.find((t) => t.unit === 'report')!.owner!;
    const victim = [...nodes].find(([id]) => id === owner.node)!;
    victim[1].child.kill('SIGKILL');
    const handover = await until('owner:changed of report on the stream', async () =>
      events.find((e) => e.event === 'owner:changed' && e.data.task === 'report' && (e.data.to as { node?: string } | null)?.node !== undefined && (e.data.to as { node: string }).node !== owner.node),
    );
    expect(typeof handover.data.seq).toBe('number');
    // Classified and measured by the monitor, and kept: /api/owners lists it, newest first.
    expect(handover.data.kind).toBe('failover');
    expect(handover.data.gapMs).toBeGreaterThanOrEqual(0);
    await until('node:left on the stream', async () => events.find((e) => e.event === 'node:left' && (e.data.node as { id: string }).id === owner.node));
    const owners = (await (await get('/api/owners?task=report')).json()) as { changes: { kind: string; to: { token: string } | null; gapMs?: number }[] };
    expect(owners.changes.find((c) => c.kind === 'failover')).toMatchObject({ to: { token: (handover.data.to as { token: string }).token }, gapMs: handover.data.gapMs });
    expect((await get('/api/owners?task=bad%20name')).status).toBe(400);
    // After the first snapshot the stream sends what changed, never the whole status again.
    const deltas = events.filter((e) => e.event === 'status:delta');
    expect(deltas.length).toBeGreaterThan(0);
    expect(events.filter((e) => e.event === 'status')).toHaveLength(1);
    expect(deltas.every((d) => typeof d.data.at === 'number' && !('cluster' in d.data))).toBe(true);
    await reader.cancel();
    await pump.catch(() => undefined);

    // Controls.
    expect((await post('/api/tasks/report/pause')).status).toBe(200);
    await until('report paused', async () => ((await status()).tasks.find((t) => t.unit === 'report')?.paused ? true : undefined));
    expect((await post('/api/tasks/report/resume')).status).toBe(200);
    await until('report resumed', async () => ((await status()).tasks.find((t) => t.unit === 'report')?.paused === false ? true : undefined));
    const triggered = (await (await post('/api/tasks/cleanup/trigger')).json()) as { trigger: string };
    expect(triggered.trigger).toMatch(/^\d{15}-/);
    await until('the triggered run', async () => {
      const body = (await (await get('/api/runs?task=cleanup&limit=20')).json()) as { runs: RunRecord[] };
      return body.runs.find((r) => r.triggerId === triggered.trigger && r.status === 'succeeded');
    });
    expect((await post('/api/tasks/nope/trigger')).status).toBe(404);
    expect((await post('/api/tasks/bad%20name/trigger')).status).toBe(400);

    // Metrics. The monitor's session renews every TTL/3 (1.7 s): this point can come before its first renewal.
    const metrics = await get('/metrics');
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    const renewed = /baton_session_renew_duration_seconds_count\{cluster="[^"]+"\} [1-9]/;
    const text = await until('a session renewal in the metrics', async () => {
      const body = await (await get('/metrics')).text();
      return renewed.test(body) ? body : undefined;
    });
    expect(text).toContain(`baton_nodes{cluster="${cluster}"} 2`);
    expect(text).toMatch(new RegExp(`baton_task_runs_total\\{task="cleanup",unit="cleanup",outcome="succeeded",cluster="${cluster}"\\} [1-9]`));
    expect(text).toMatch(new RegExp(`baton_owner_changes_total\\{task="report",unit="report",cluster="${cluster}"\\} [1-9]`));

    // SIGTERM stops the monitor cleanly.
    const exited = new Promise<number | null>((resolve) => serve.child.once('exit', (code) => resolve(code)));
    serve.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    for (const { child } of nodes.values()) child.kill('SIGTERM');
  });
});
