/**
 * The examples run: each mode's example file, two processes on their own SQLite file until the output shows
 * the mode at work, then SIGTERM. They must exit cleanly and print what their mode promises; no tick line twice.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, expect, it } from 'vitest';
import { randomId } from '../../src/core/ids.js';
import { startFencedApi } from '../../examples/fenced-http/api.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-examples-'));
// The fenced examples' own resources: a PostgreSQL table of this run, and the HTTP API they write to.
const PG_URL = 'postgres://postgres@127.0.0.1:5432/test';
const FENCED_TABLE = `baton_example_${randomId(4).toLowerCase()}`;
const api = await startFencedApi();
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await api.close();
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  await client.query(`DROP TABLE IF EXISTS ${FENCED_TABLE}`);
  await client.end();
});

const EXAMPLES: { file: string; expect: RegExp; env?: Record<string, string>[] }[] = [
  // ctx.log.info reaches stderr at the default log level, as the example's reader expects.
  { file: 'singleton', expect: /^(?=[\s\S]*ran tick)(?=[\s\S]*"msg":"pulling orders")/ },
  { file: 'preferred', expect: /\(region eu\) settles tick/, env: [{ BATON_REGION: 'eu' }, { BATON_REGION: 'us' }] },
  { file: 'mutex', expect: /won tick/ },
  { file: 'round-robin', expect: /'s turn: tick/ },
  { file: 'broadcast', expect: /refreshes its cache/ },
  { file: 'sharded', expect: /imports \w+ \(shard \d\/6\)/ },
  { file: 'dispatch', expect: /retried order/ },
  { file: 'monitor', expect: /webhook: alert firing consecutive-failures:flaky-export/ },
  // Both fenced examples: the first owner fences its resource in onAcquire, then its runs write with the token.
  {
    file: 'fenced-table',
    expect: /^(?=[\s\S]*fenced baton_example_\w+ with token)(?=[\s\S]*exported batch 2 with token)/,
    env: [{ DATABASE_URL: PG_URL, FENCED_TABLE }, { DATABASE_URL: PG_URL, FENCED_TABLE }],
  },
  {
    file: 'fenced-http/node',
    expect: /^(?=[\s\S]*fenced the API with token)(?=[\s\S]*published tick)/,
    env: [{ FENCED_API: api.url }, { FENCED_API: api.url }],
  },
];

/** Stop every example once its output shows the mode at work (at least 6 s, at most 45 s: a loaded CI
 * machine starts 16 tsx processes at once, and a 5 s schedule may need two periods to show). */
const MIN_RUN_MS = 6000;
const MAX_RUN_MS = 45_000;

interface Running {
  readonly exited: Promise<{ code: number | null; out: string }>;
  output(): string;
  /** It printed its start line: its SIGTERM handler is in place (a SIGTERM before it would kill it). */
  ready(): boolean;
  stop(): void;
}

const STARTED = /joined|competes|takes turns|runs every tick|shares|consumes/;

function start(file: string, db: string, env: Record<string, string>, onJoined: () => void = () => undefined): Running {
  const child = spawn(process.execPath, ['--import', 'tsx', `examples/${file}.ts`, `sqlite:${db}`], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    if (STARTED.test(out)) onJoined();
  });
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<{ code: number | null; out: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, out })),
  );
  return { exited, output: () => out, ready: () => STARTED.test(out), stop: () => child.kill('SIGTERM') };
}

async function runUntil(nodes: Running[], expected: RegExp): Promise<{ code: number | null; out: string }[]> {
  const began = Date.now();
  for (;;) {
    const elapsed = Date.now() - began;
    const shown = expected.test(nodes.map((n) => n.output()).join('\n'));
    if ((shown && elapsed >= MIN_RUN_MS && nodes.every((n) => n.ready())) || elapsed >= MAX_RUN_MS) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  for (const node of nodes) node.stop();
  return Promise.all(nodes.map((n) => n.exited));
}

it('runs every mode example in two processes and shows what the mode does', async () => {
  await Promise.all(
    EXAMPLES.map(async (example) => {
      const db = join(dir, `${example.file.replace(/\//g, '-')}.db`);
      // The preferred example's eu node starts first: a us node alone would rightly own the task until
      // the eu node has been up for failbackAfter (10 s), longer than this run.
      let joined: () => void = () => undefined;
      const firstJoined = new Promise<void>((resolve) => (joined = resolve));
      const first = start(example.file, db, example.env?.[0] ?? {}, joined);
      if (example.env) await firstJoined;
      const second = start(example.file, db, example.env?.[1] ?? {});
      const results = await runUntil([first, second], example.expect);
      const out = results.map((r) => r.out).join('\n');
      for (const r of results) expect(r.code, `${example.file}: ${r.out}`).toBe(0);
      expect(out, example.file).toMatch(example.expect);
      const ticks = out.match(/tick \S+Z/g) ?? [];
      if (example.file !== 'broadcast') expect(ticks.length - new Set(ticks).size, `${example.file}: ${out}`).toBe(0);
    }),
  );
  // The API saw the example's writes, every one with the greatest token so far (none refused: no zombie here).
  const report = (await (await fetch(`${api.url}/report`)).json()) as { accepted: number; refused: number; body: string };
  expect(report.accepted).toBeGreaterThan(0);
  expect(report.refused).toBe(0);
}, 120_000);
