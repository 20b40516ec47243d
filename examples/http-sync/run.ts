/**
 * The http-sync example end to end, in one command:
 *
 *   npm run example:http-sync              # narrated
 *   npm run example:http-sync -- --json    # one line: {"sourceRows","targetRows","duplicates","rejected","cursorRegressions"}
 *
 * Starts the fixture orders API (changing data, random faults, some invalid records), then 3 service
 * processes (service.ts) on a temporary SQLite store and SQLite target; SIGKILLs the owner while its page
 * request is in flight; stops the changes and waits until the target has caught up. The cursor row is
 * sampled every 25 ms to count regressions. Exits 1 unless the target equals the source row for row, no
 * key is there twice, the cursor never went back and the rejects are exactly the invalid records.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { FixtureApi, type Order } from './fixture-api.js';

const json = process.argv.includes('--json');
const say = (text: string) => {
  if (!json) console.log(text);
};
const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'baton-http-sync-example-'));
const storeUrl = `sqlite:${join(dir, 'baton.db')}`;
const targetFile = join(dir, 'orders.db');
const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const api = await FixtureApi.start({
  seed: 42,
  initial: 400,
  invalidEvery: 20,
  latencyMs: 10,
  faults: { error500: 0.05, tooMany: 0.02, hang: 0.02, malformed: 0.04, duplicate: 0.04, stale: 0.04, shuffle: 0.1 },
  retryAfterSeconds: 1,
});
api.schedule('error500', 'shuffle', 'hang', 'stale', 'tooMany', 'malformed', 'duplicate'); // each fault early, then at random
api.startChanging({ everyMs: 150, inserts: 3, updates: 2 });
say(`orders API on ${api.url}/orders: ${api.records().length} orders, more every 150 ms, with 500s, 429s, hangs, malformed JSON, replayed and shuffled pages`);

const children = new Map<string, ChildProcess>();
const start = (id: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'service.ts'), '--api', api.url, '--store', storeUrl, '--target', `sqlite:${targetFile}`, '--node', id], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.set(id, child);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      say(`  │ ${line}`);
      if (line.includes('joined cluster')) resolve();
    });
    createInterface({ input: child.stderr! }).on('line', (line) => say(`  │ ${id} stderr: ${line}`));
    child.once('exit', (code, signal) => reject(new Error(`${id} exited (${code ?? signal}) before it joined`)));
  });
const exited = (child: ChildProcess) => (child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', r)));

let db: Database.Database | undefined;
const target = (): Database.Database => (db ??= new Database(targetFile, { readonly: true, timeout: 2000 }));
const tableExists = (name: string) => {
  try {
    return target().prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
  } catch {
    return false;
  }
};

// The cursor row, sampled: a later sample behind an earlier one is a regression.
let regressions = 0;
let samples = 0;
let previous: { ts: string; id: number | null } | null = null;
const sampler = setInterval(() => {
  if (!tableExists('baton_sync_cursor')) return;
  const row = target().prepare("SELECT cursor_value FROM baton_sync_cursor WHERE name = 'sync-orders'").get() as { cursor_value: string | null } | undefined;
  if (!row?.cursor_value) return;
  const cursor = JSON.parse(row.cursor_value) as { ts: string; id: number | null };
  samples++;
  if (previous && (Date.parse(cursor.ts) - Date.parse(previous.ts) || (cursor.id ?? -1) - (previous.id ?? -1)) < 0) regressions++;
  previous = cursor;
}, 25);

let code = 1;
try {
  await Promise.all(['n1', 'n2', 'n3'].map(start));
  say('3 service processes joined; one of them owns sync-orders');
  await wait(3000);

  const held = await api.holdNext();
  const victim = children.get(held.node ?? '');
  if (!victim) throw new Error(`a page request came from an unknown node ${held.node}`);
  victim.kill('SIGKILL');
  await exited(victim);
  say(`SIGKILLed ${held.node} (pid ${victim.pid}) while its page request was in flight`);
  await wait(3000);

  api.stopChanging();
  const source = new Map<number, Order>(api.validRecords().map((r) => [r.id, r]));
  say(`source stopped changing at ${api.records().length} orders (${source.size} valid); waiting for the target to catch up`);
  const deadline = Date.now() + 45_000;
  let equal = false;
  while (!equal && Date.now() < deadline) {
    await wait(250);
    if (!tableExists('orders')) continue;
    const rows = target().prepare('SELECT id, customer, amount_cents, status, updated_at FROM orders').all() as Order[];
    equal = rows.length === source.size && rows.every((r) => JSON.stringify(r) === JSON.stringify(source.get(r.id)));
  }
  clearInterval(sampler);
  for (const child of children.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  await Promise.all([...children.values()].map(exited));

  const count = (sql: string) => (target().prepare(sql).get() as { n: number }).n;
  const result = {
    sourceRows: source.size,
    targetRows: count('SELECT COUNT(*) AS n FROM orders'),
    duplicates: count('SELECT COUNT(*) AS n FROM (SELECT id FROM orders GROUP BY id HAVING COUNT(*) > 1)'),
    rejected: count("SELECT COUNT(*) AS n FROM baton_sync_rejects WHERE name = 'sync-orders'"),
    cursorRegressions: regressions,
  };
  const invalid = api.invalidRecords().length;
  const ok = equal && result.targetRows === result.sourceRows && result.duplicates === 0 && result.cursorRegressions === 0 && result.rejected === invalid;
  if (json) console.log(JSON.stringify(result));
  else {
    say(ok ? 'target = source, row for row' : 'target ≠ source');
    say(`source rows ${result.sourceRows}, target rows ${result.targetRows}, duplicate keys ${result.duplicates}, rejected ${result.rejected} (invalid in source: ${invalid}), cursor regressions ${result.cursorRegressions} (in ${samples} samples)`);
    const served = Object.entries(api.served).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ');
    say(`API answers: ${served}`);
  }
  code = ok ? 0 : 1;
} catch (error) {
  console.error(`example failed: ${(error as Error).message}`);
} finally {
  clearInterval(sampler);
  for (const child of children.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  db?.close();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(code);
