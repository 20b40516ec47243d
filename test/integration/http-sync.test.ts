/**
 * The HTTP sync with three real node processes (test/helpers/http-sync-node.ts) on a real baton cluster,
 * against the fixture API in this process (changing data, random faults), on SQLite, PostgreSQL and
 * MariaDB (the store and the target of the same kind):
 * 1. the owner is SIGKILLed while its page request is in flight;
 * 2. the next owner is SIGSTOPped mid-page for longer than the TTL, its page is answered while it is
 *    stopped, and it is SIGCONTinued: its nodes ignore `ctx.signal` (zombie mode), so only the fenced
 *    cursor in the target can stop its late commit, which must be refused (NotOwnerError);
 * 3. the data stops changing and the survivors catch up.
 * Then the target table equals the source (every row compared), no key twice, the rejects are exactly
 * the invalid records, and the cursor row (sampled every 20 ms) never moved backwards, nor its token.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { randomId } from '../../src/core/ids.js';
import { openStore } from '../../src/stores/open-store.js';
import { compareCursors, diffOrders, FixtureApi, TargetProbe, targetUrl, type TargetKind } from '../helpers/http-sync-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-http-sync-mp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Line {
  type: string;
  node: string;
  at: number;
  token?: string;
  code?: string;
  cursor?: { ts: string; id: number | null };
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Lines of the nodes, for the message of a failed wait. */
let recent: () => string = () => '';

/** Whether `check` came true within `ms`. */
async function within(ms: number, check: () => boolean | Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) return false;
    await wait(50);
  }
  return true;
}

async function until(what: string, ms: number, check: () => boolean | Promise<boolean>): Promise<void> {
  if (!(await within(ms, check))) throw new Error(`timed out after ${ms} ms waiting for ${what}; last lines:\n${recent()}`);
}

const KINDS: TargetKind[] = ['sqlite', 'postgres', 'mysql'];

describe.each(KINDS)('http sync, 3 processes, store and target on %s', (kind) => {
  it('ends with target = source through a SIGKILL mid-page and a paused owner resuming', async () => {
    const suffix = randomId(4);
    const cluster = `http-sync-${suffix}`;
    const store = kind === 'sqlite' ? `sqlite:${join(dir, `baton-${suffix}.db`)}` : targetUrl(kind, '');
    const target = targetUrl(kind, join(dir, `target-${suffix}.db`));
    const table = `orders_${suffix}`;
    const cursorTable = `sync_cursor_${suffix}`;
    const rejectsTable = `sync_rejects_${suffix}`;
    const probe = await TargetProbe.open(target);
    await probe.createOrders(table);
    const api = await FixtureApi.start({
      seed: 20 + KINDS.indexOf(kind),
      initial: 300,
      invalidEvery: 17,
      latencyMs: 5,
      faults: { error500: 0.05, tooMany: 0.02, hang: 0.03, malformed: 0.05, duplicate: 0.05, stale: 0.05, shuffle: 0.1 },
    });
    // Each fault at least once, early, then at random.
    api.schedule('hang', 'error500', 'malformed', 'duplicate', 'tooMany', 'stale', 'shuffle', 'malformed', 'hang');
    api.startChanging({ everyMs: 100, inserts: 2, updates: 2 });

    const lines: Line[] = [];
    recent = () => lines.slice(-25).map((l) => JSON.stringify(l)).join('\n');
    const children = new Map<string, ChildProcess>();
    const samples: { cursor: Line['cursor'] | null; token: bigint }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const row = await probe.cursor(cursorTable, 'orders').catch(() => undefined);
        if (row) samples.push({ cursor: row.cursor as Line['cursor'] | null, token: row.token });
        await wait(20);
      }
    })();
    const start = (id: string): Promise<ChildProcess> => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/http-sync-node.ts', store, cluster, id, api.url, target, suffix, 'zombie'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.set(id, child);
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
    const pagesAfter = (at: number, node?: string) => lines.filter((l) => l.type === 'page' && l.at > at && (node === undefined || l.node === node));

    try {
      await Promise.all(['n1', 'n2', 'n3'].map(start));
      const began = Date.now();
      await until('a first committed page', 15_000, () => pagesAfter(began).length > 0);

      // 1. SIGKILL the owner while its page request is in flight.
      const held = await api.holdNext();
      const killed = held.node as string;
      const killedAt = Date.now();
      children.get(killed)!.kill('SIGKILL');
      await exited(children.get(killed)!);
      await until('a takeover after the SIGKILL', 15_000, () => pagesAfter(killedAt).some((l) => l.node !== killed));

      // 2. SIGSTOP the next owner mid-page; answer its page while it is stopped; SIGCONT it after > TTL.
      let paused = '';
      let pausedToken: string | undefined;
      let resumedAt = 0;
      for (let attempt = 1; ; attempt++) {
        const held2 = await api.holdNext();
        paused = held2.node as string;
        expect(paused).not.toBe(killed);
        pausedToken = lines.filter((l) => l.node === paused && l.type === 'run').at(-1)?.token;
        children.get(paused)!.kill('SIGSTOP');
        held2.release();
        const stoppedAt = Date.now();
        const tookOver = await within(10_000, () => pagesAfter(stoppedAt).some((l) => l.node !== paused));
        if (tookOver) {
          await wait(Math.max(0, stoppedAt + 2500 - Date.now()));
          resumedAt = Date.now();
          children.get(paused)!.kill('SIGCONT');
          break;
        }
        // On SQLite a process stopped inside a store transaction holds the file's write lock, and nobody
        // can write until it resumes (the store's documented frozen-writer limit): resume it, pause again.
        children.get(paused)!.kill('SIGCONT');
        if (kind !== 'sqlite' || attempt === 3) throw new Error(`no takeover while ${paused} was stopped; last lines:\n${recent()}`);
        await wait(1000);
      }
      await until('the paused owner to be refused', 10_000, () =>
        lines.some((l) => l.node === paused && l.type === 'failed' && l.token === pausedToken && l.at >= resumedAt),
      );

      // 3. The data stops changing; the survivors catch up.
      api.stopChanging();
      const expected = api.validRecords();
      await until('target = source', 30_000, async () => {
        const diff = diffOrders(await probe.orders(table), expected);
        return diff.missing.length + diff.extra.length + diff.different.length === 0;
      });
      sampling = false;
      await sampler;
      for (const child of children.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await Promise.all([...children.values()].map(exited));

      expect(diffOrders(await probe.orders(table), expected)).toEqual({ missing: [], extra: [], different: [] });
      expect(await probe.duplicateKeys(table)).toBe(0);
      const rejects = await probe.rejects(rejectsTable, 'orders');
      expect(rejects.map((r) => Number(r.recordKey)).sort((a, b) => a - b)).toEqual(api.invalidRecords().map((r) => r.id).sort((a, b) => a - b));
      expect(rejects.every((r) => r.reason.startsWith('schema: '))).toBe(true);

      // The paused owner's late page was refused by the target's fence, and nothing of its old token landed after.
      const refusal = lines.find((l) => l.node === paused && l.type === 'failed' && l.token === pausedToken && l.at >= resumedAt);
      expect(refusal?.code).toBe('NOT_OWNER');
      expect(lines.filter((l) => l.node === paused && l.type === 'page' && l.token === pausedToken && l.at >= resumedAt)).toEqual([]);

      // The cursor never moved backwards, and the fencing token in the row never decreased.
      expect(samples.length).toBeGreaterThan(50);
      for (let i = 1; i < samples.length; i++) {
        const [a, b] = [samples[i - 1]!, samples[i]!];
        expect(compareCursors(b.cursor ?? null, a.cursor ?? null), `cursor sample ${i}`).toBeGreaterThanOrEqual(0);
        expect(b.token >= a.token, `token sample ${i}`).toBe(true);
      }
      // Every committed page line, per node and token, also has a monotonic cursor.
      const pages = lines.filter((l) => l.type === 'page');
      for (const node of new Set(pages.map((l) => l.node))) {
        const own = pages.filter((l) => l.node === node);
        for (let i = 1; i < own.length; i++) expect(compareCursors(own[i]!.cursor ?? null, own[i - 1]!.cursor ?? null)).toBeGreaterThanOrEqual(0);
      }
      const served = api.served;
      for (const fault of ['hang', 'error500', 'malformed', 'duplicate', 'tooMany', 'stale', 'shuffle'] as const) expect(served[fault], fault).toBeGreaterThan(0);
    } finally {
      sampling = false;
      await sampler;
      for (const child of children.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await Promise.all([...children.values()].map(exited));
      await api.close();
      await probe.drop(table, cursorTable, rejectsTable).catch(() => undefined);
      await probe.close();
      if (kind !== 'sqlite') {
        const handle = await openStore(store, { cluster });
        for (const prefix of ['run/', 'checkpoint/', 'decl/', 'declv/']) await handle.deleteBefore(prefix, `${prefix}\uffff`);
        await handle.close();
      }
    }
  }, 90_000);
});

describe.each(KINDS)('http sync target on %s, in process', (kind) => {
  it('checks the unique key, fences an older token out, and never rolls a row back to a stale copy', async () => {
    const { httpSync, NotOwnerError } = await import('../../src/sync/index.js');
    const { OrderSchema, ORDER_COLUMNS } = await import('../helpers/http-sync-fixture.js');
    const suffix = randomId(4);
    const target = targetUrl(kind, join(dir, `dialect-${suffix}.db`));
    const [table, loose, cursorTable, rejectsTable] = [`orders_${suffix}`, `loose_${suffix}`, `sync_cursor_${suffix}`, `sync_rejects_${suffix}`];
    const probe = await TargetProbe.open(target);
    const api = await FixtureApi.start({ seed: 30, initial: 5 });
    const syncs: { close(): Promise<void> }[] = [];
    const make = (name: string, t = table) => {
      const sync = httpSync({
        name,
        source: { url: `${api.url}/orders`, cursor: { kind: 'updatedSince' }, backoff: { initial: '5ms', max: '20ms' } },
        schema: OrderSchema,
        target: { db: target, table: t, key: 'id', columns: [...ORDER_COLUMNS], version: 'updated_at', cursorTable, rejectsTable },
      });
      syncs.push(sync);
      return sync;
    };
    const ctx = (token: bigint) => ({ token, signal: new AbortController().signal, node: { id: `token-${token}` } });
    try {
      await probe.createOrders(table);
      await probe.query(`CREATE TABLE ${probe.quote(loose)} (id BIGINT, customer TEXT, amount_cents BIGINT, status TEXT, updated_at TEXT)`);
      await expect(make('loose', loose).ensureSchema()).rejects.toMatchObject({ code: 'SYNC_TARGET_FAILED', message: expect.stringMatching(/unique index on exactly \(id\)/) });

      // Version guard: "b" replays the first page (old copies) after "a" wrote the newer ones.
      const a = make('a');
      expect(await a.run(ctx(1n))).toMatchObject({ upserted: 5 });
      api.update(5);
      expect((await a.run(ctx(1n))).upserted).toBeGreaterThan(0);
      const newer = await probe.orders(table);
      api.schedule('duplicate');
      expect(await make('b').run(ctx(1n))).toMatchObject({ upserted: 5 });
      expect(await probe.orders(table)).toEqual(newer);
      expect(diffOrders(newer, api.validRecords())).toEqual({ missing: [], extra: [], different: [] });

      // Fencing: token 6 claims "c" while token 5's page is held; token 5's page is refused.
      const older = make('c');
      const held = api.holdNext();
      const oldRun = older.run(ctx(5n));
      const request = await held;
      expect(await make('c').run(ctx(6n))).toMatchObject({ stopped: 'caught-up' });
      const before = await probe.cursor(cursorTable, 'c');
      api.insert(2);
      request.release();
      await expect(oldRun).rejects.toBeInstanceOf(NotOwnerError);
      expect(await probe.cursor(cursorTable, 'c')).toEqual(before);
      expect(before?.token).toBe(6n);
      expect((await probe.orders(table)).length).toBe(5);
    } finally {
      for (const sync of syncs) await sync.close();
      await api.close();
      await probe.drop(table, loose, cursorTable, rejectsTable).catch(() => undefined);
      await probe.close();
    }
  });
});
