/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core; scripts/services.sh
 * installs it): three node processes (test/e2e/dashboard-node.ts) on a SQLite file and a monitor in this
 * process. The page (static files under a CSP without 'unsafe-inline': any violation fails the test) lists
 * the three nodes and an owner for every task; after the owner of one task is SIGKILLed, the page shows
 * another owner for it within 2 s, without a reload, and marks the failover on the timeline — still there
 * after a reload. A run triggered from the page shows up in the task's runs with its output; a pause shows
 * its missed-by-pause records. A fourth node declares 1,000 tasks in a cluster of its own: the page lists
 * them all, filters and groups them. Without the token the page shows how to sign in and no data.
 * Screenshots: test/e2e/artifacts/dashboard*.png.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomId } from '../../src/core/ids.js';
import { startMonitor, type Monitor } from '../../src/monitor/monitor.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(import.meta.dirname, 'artifacts');
const NODE_IDS = ['node-a', 'node-b', 'node-c'] as const;
/** Tasks every second (on the timeline at once); `export` runs hourly, or when triggered. */
const TASKS = ['cleanup', 'report', 'sync'];
const ALL_TASKS = [...TASKS, 'export'].sort();
const BULK = 1000;

const dir = mkdtempSync(join(tmpdir(), 'baton-dashboard-'));
const url = `sqlite:${join(dir, 'baton.db')}`;
const cluster = `dash-${randomId(4)}`;
const token = `t-${randomId(16)}`;
const children = new Map<string, ChildProcess>();
const pids = new Map<string, number>();
let monitor: Monitor | undefined;
let bulkMonitor: Monitor | undefined;
let baseUrl = '';
let bulkUrl = '';
let browser: Browser | undefined;

// The functions given to page.evaluate / waitForFunction run in the page. The project compiles without the
// DOM lib, so this file names the little of the page's globals they use (declarations local to this module).
interface PageElement {
  readonly textContent: string | null;
  readonly hidden: boolean;
  readonly childElementCount: number;
  readonly dataset: Record<string, string | undefined>;
  querySelector(selector: string): PageElement | null;
}
declare const document: {
  readonly body: { readonly innerText: string } | null;
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement>;
};
declare const window: { __xss?: number; __noReload?: boolean };

function startNode(id: string, clusterName = cluster, bulk?: number): Promise<void> {
  const args = ['--import', 'tsx', 'test/e2e/dashboard-node.ts', url, clusterName, id, ...(bulk !== undefined ? [String(bulk)] : [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.set(id, child);
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (text) => {
      const line = JSON.parse(text) as { type: string; pid: number };
      if (line.type === 'ready') {
        pids.set(id, line.pid);
        resolve();
      }
    });
    child.once('exit', (code, signal) => reject(new Error(`${id} exited (${code ?? signal}) before it was ready`)));
  });
}

const exited = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));

/** What the tasks table shows, read in the page: unit -> owner cell text and owner node. */
function ownersIn(page: Page): Promise<Record<string, { owner: string; node: string }>> {
  return page.evaluate(() => {
    const rows = document.querySelectorAll('[data-testid=tasks] tr[data-task]');
    return Object.fromEntries(
      [...rows].map((row) => [
        row.dataset.task as string,
        {
          owner: row.querySelector('[data-field=owner]')?.textContent ?? '',
          node: row.querySelector('[data-field=owner-node]')?.textContent ?? '',
        },
      ]),
    );
  });
}

/**
 * A new browser context on the dashboard, signed in with the token, once the page is live. Errors of the
 * page and CSP violations (reported on the console) are collected in `problems`.
 */
async function openDashboard(at = baseUrl, viewport = { width: 1440, height: 1000 }): Promise<{ context: BrowserContext; page: Page; problems: string[]; csp: string }> {
  const context = await browser!.newContext({ viewport });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text());
  });
  const response = await page.goto(`${at}?token=${encodeURIComponent(token)}`);
  await waitLive(page);
  return { context, page, problems, csp: (await response?.allHeaders())?.['content-security-policy'] ?? '' };
}

const waitLive = (page: Page) => page.waitForFunction(() => document.querySelector('[data-testid=connection]')?.textContent === 'live', null, { timeout: 10_000 });

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const bulkCluster = `${cluster}-bulk`;
  await Promise.all([...NODE_IDS.map((id) => startNode(id)), startNode('node-bulk', bulkCluster, BULK)]);
  monitor = await startMonitor({ store: url, cluster, listen: '127.0.0.1:0', token, pollEvery: '250ms' });
  bulkMonitor = await startMonitor({ store: url, cluster: bulkCluster, listen: '127.0.0.1:0', token });
  if (!monitor.url || !bulkMonitor.url) throw new Error('monitor: started without a url');
  baseUrl = monitor.url;
  bulkUrl = bulkMonitor.url;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
});

afterAll(async () => {
  // Every step runs even when an earlier one throws: no node process may outlive the test.
  for (const child of children.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.allSettled([...children.values()].map(exited));
  await Promise.allSettled([browser?.close(), monitor?.close(), bulkMonitor?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('dashboard in a browser', () => {
  it('shows nodes and owners, a new owner within 2 s of killing one, without a reload, and the failover on the timeline after a reload', async () => {
    const { context, page, problems, csp } = await openDashboard();
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    // Three nodes, an owner for every task, and a few runs on each task's timeline strip.
    await page.waitForFunction(
      (tasks) => {
        const ownedAll = tasks.every((t) => {
          const cell = document.querySelector(`[data-testid=tasks] tr[data-task="${t}"] [data-field=owner]`);
          return cell !== null && /^.+:\d+$/.test(cell.textContent ?? '');
        });
        const runsShown = tasks.every((t) => (document.querySelector(`[data-timeline="${t}"]`)?.childElementCount ?? 0) >= 3);
        return document.querySelectorAll('[data-testid=nodes] tr[data-node]').length === 3 && ownedAll && runsShown;
      },
      TASKS,
      { timeout: 20_000 },
    );
    expect(await page.locator('[data-testid=nodes] tr[data-node]').count()).toBe(3);
    for (const id of NODE_IDS) expect(await page.locator(`[data-testid=nodes] tr[data-node="${id}"]`).count()).toBe(1);
    // The label's markup is shown as text, never run.
    expect(await page.evaluate(() => window.__xss)).toBeUndefined();
    expect(await page.locator('[data-testid=nodes] img').count()).toBe(0);
    expect(await page.locator('[data-testid=nodes]').innerText()).toContain('<img src=x');

    const before = await ownersIn(page);
    expect(Object.keys(before).sort()).toEqual(ALL_TASKS);
    for (const [task, { owner, node }] of Object.entries(before)) {
      expect(NODE_IDS as readonly string[], `${task} is owned by a test node`).toContain(node);
      expect(owner, `${task}: host:pid of ${node}`).toMatch(new RegExp(`^.+:${pids.get(node)}$`));
    }

    // Kill the owner of "report"; mark the page so a reload would show.
    const victim = before.report!.node;
    await page.evaluate(() => void (window.__noReload = true));
    const killedAt = Date.now();
    children.get(victim)!.kill('SIGKILL');
    await page.waitForFunction(
      (dead) => {
        const node = document.querySelector('[data-testid=tasks] tr[data-task="report"] [data-field=owner-node]')?.textContent ?? '';
        return node !== '' && node !== '—' && node !== dead;
      },
      victim,
      { timeout: 10_000 },
    );
    const failoverMs = Date.now() - killedAt;
    const after = await ownersIn(page);
    expect(await page.evaluate(() => window.__noReload)).toBe(true);
    expect(after.report!.node).not.toBe(victim);
    expect(after.report!.owner).toMatch(new RegExp(`:${pids.get(after.report!.node)}$`));
    expect(failoverMs, `the page showed a new owner ${failoverMs} ms after the kill`).toBeLessThan(2000);

    // Let the page catch the rest (node left, owner changed) for the screenshot.
    await page
      .waitForFunction(() => document.querySelectorAll('[data-testid=nodes] tr[data-node]').length === 2, null, { timeout: 5000 })
      .catch(() => undefined);
    // The failover is marked on report's strip with its measured gap, and the monitor keeps it: a reload shows it.
    const failoverMark = '[data-timeline="report"] [data-owner-change=failover]';
    await page.waitForSelector(failoverMark, { timeout: 5000 });
    await page.reload();
    await waitLive(page);
    await page.waitForSelector(failoverMark, { timeout: 5000 });
    const gap = Number(await page.locator(failoverMark).last().getAttribute('data-gap'));
    expect(gap, 'the measured gap of the failover, in ms').toBeGreaterThanOrEqual(0);
    expect(gap).toBeLessThan(failoverMs + 1000);
    expect(await page.locator(failoverMark).last().getAttribute('title')).toMatch(new RegExp(`failover .*\\(${victim}\\) → .* gap \\d`));
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
    expect(problems).toEqual([]);
    await context.close();
  });

  it('triggers, pauses and resumes from the page with the typed token; the run and its output, the missed-by-pause records; the actions stay in the events after a reload', async () => {
    const { context, page, problems } = await openDashboard();
    const resultIs = (pattern: string) =>
      page.waitForFunction((p) => new RegExp(p).test(document.querySelector('[data-testid=action-result]')?.textContent ?? ''), pattern, { timeout: 5000 });

    // The cookie alone does not act: the page asks for the token.
    await page.click('button[data-action=trigger][data-act-task=cleanup]');
    await resultIs('^Enter the monitor token');
    await page.fill('[data-testid=action-token]', 'wrong-token-0000000000');
    await page.click('button[data-action=trigger][data-act-task=cleanup]');
    await resultIs('refused: write actions need the header');

    await page.fill('[data-testid=action-token]', token);
    await page.click('button[data-action=trigger][data-act-task=cleanup]');
    await resultIs('^trigger cleanup: done \\(trigger \\d+-\\w+\\)$');
    const triggerId = /trigger (\d+-\w+)/.exec((await page.locator('[data-testid=action-result]').textContent()) ?? '')![1]!;
    await page.click('button[data-action=pause][data-act-task=sync]');
    await resultIs('^pause sync: done$');
    await page.waitForSelector('[data-testid=tasks] tr[data-task="sync"] button[data-action=resume]', { timeout: 5000 });
    expect(await page.locator('[data-testid=tasks] tr[data-task="sync"]').innerText()).toContain('paused');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=events] li[data-type="task:action"]').length >= 2, null, { timeout: 5000 });

    // Trigger export (hourly) from the page, open it from its row: the run is listed with its trigger id,
    // and its link shows the output the handler recorded.
    await page.click('button[data-action=trigger][data-act-task=export]');
    await resultIs('^trigger export: done \\(trigger \\d+-\\w+\\)$');
    const exportTrigger = /trigger (\d+-\w+)/.exec((await page.locator('[data-testid=action-result]').textContent()) ?? '')![1]!;
    await page.click('[data-testid=tasks] tr[data-task="export"] a[data-link=task]');
    await page.waitForFunction(() => document.querySelector('[data-testid=detail-task]')?.textContent === 'export', null, { timeout: 5000 });
    const runLink = page.locator('[data-testid=detail-runs] tr[data-status=succeeded] a[data-link=run]', { hasText: exportTrigger });
    await runLink.waitFor({ timeout: 10_000 });
    await runLink.click();
    await page.waitForFunction(() => /exported 42 rows/.test(document.querySelector('[data-testid=run-view] [data-field=stdout]')?.textContent ?? ''), null, { timeout: 5000 });
    expect(await page.locator('[data-testid=run-view]').innerText()).toContain(exportTrigger);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-task.png'), fullPage: true });

    // The paused task's ticks are recorded missed, reason paused: its runs filtered by outcome show them.
    await page.goto(`${baseUrl}#task=sync`);
    await waitLive(page);
    await page.selectOption('[data-testid=detail-outcome]', 'missed');
    await page.waitForFunction(
      () => [...document.querySelectorAll('[data-testid=detail-runs] tr[data-status=missed] [data-field=missed]')].some((cell) => /paused/.test(cell.textContent ?? '')),
      null,
      { timeout: 10_000 },
    );

    // The triggered run is recorded with its trigger id.
    const auth = { Authorization: `Bearer ${token}` };
    await expect
      .poll(async () => ((await (await fetch(new URL('/api/runs?task=cleanup&limit=20', baseUrl), { headers: auth })).json()) as { runs: { triggerId?: string; status: string }[] }).runs.find((r) => r.triggerId === triggerId)?.status, { timeout: 10_000 })
      .toBe('succeeded');

    // A reload keeps the events the monitor holds.
    await page.reload();
    await page.waitForFunction(() => document.querySelector('[data-testid=connection]')?.textContent === 'live', null, { timeout: 10_000 });
    const listed = await page.locator('[data-testid=events] li[data-type="task:action"]').allInnerTexts();
    expect(listed.some((t) => t.includes('cleanup: trigger by token from 127.0.0.1'))).toBe(true);
    expect(listed.some((t) => t.includes('sync: pause by token from 127.0.0.1'))).toBe(true);

    // The typed token is gone with the reload (kept in the page's memory only).
    await page.click('button[data-action=resume][data-act-task=sync]');
    await resultIs('^Enter the monitor token');
    await page.fill('[data-testid=action-token]', token);
    await page.click('button[data-action=resume][data-act-task=sync]');
    await resultIs('^resume sync: done$');
    await page.waitForSelector('[data-testid=tasks] tr[data-task="sync"] button[data-action=pause]', { timeout: 5000 });
    expect(monitor!.status()?.tasks.find((t) => t.task === 'sync')?.paused).toBe(false);
    expect(problems).toEqual([]);
    await context.close();
  });

  it(`renders ${BULK} tasks, filters, searches and groups them`, async () => {
    const { context, page, problems } = await openDashboard(bulkUrl);
    const shown = () => page.locator('[data-testid=task-shown]').textContent();
    await page.waitForFunction((n) => document.querySelector('[data-testid=task-shown]')?.textContent === `${n} tasks`, BULK, { timeout: 20_000 });
    expect(await page.locator('[data-testid=tasks] tr[data-task]').count()).toBe(BULK);

    await page.fill('[data-testid=task-filter]', 'bulk-070');
    await page.waitForFunction((n) => document.querySelector('[data-testid=task-shown]')?.textContent === `10 of ${n} tasks shown`, BULK, { timeout: 5000 });
    const listed = await page.locator('[data-testid=tasks] tr[data-task]').evaluateAll((rows) => rows.map((r) => (r as unknown as PageElement).dataset.task));
    expect(listed).toEqual(Array.from({ length: 10 }, (_, i) => `bulk-070${i}`));
    // The timeline follows the filter.
    expect(await page.locator('[data-timeline]').count()).toBe(10);

    // Several words narrow (each must match); grouping by owner puts a header above each owner's rows.
    await page.fill('[data-testid=task-filter]', 'bulk-070 bulk-0705');
    await page.waitForFunction((n) => document.querySelector('[data-testid=task-shown]')?.textContent === `1 of ${n} tasks shown`, BULK, { timeout: 5000 });
    await page.fill('[data-testid=task-filter]', 'bulk-070');
    await page.selectOption('[data-testid=task-group]', 'owner');
    await page.waitForSelector('[data-testid=tasks] tr[data-group]', { timeout: 5000 });
    const groups = await page.locator('[data-testid=tasks] tr[data-group]').allInnerTexts();
    expect(groups.length).toBeGreaterThanOrEqual(1);
    expect(groups.join(' ')).toMatch(/node-bulk · \d+|no owner · \d+/);

    // Clearing the search shows them all again; the rows are sorted by name, and a click on the column reverses them.
    await page.selectOption('[data-testid=task-group]', '');
    await page.fill('[data-testid=task-filter]', '');
    await page.waitForFunction((n) => document.querySelector('[data-testid=task-shown]')?.textContent === `${n} tasks`, BULK, { timeout: 5000 });
    expect(await page.locator('[data-testid=tasks] tr[data-task]').first().getAttribute('data-task')).toBe('bulk-0000');
    await page.click('button[data-sort=unit]');
    expect(await page.locator('[data-testid=tasks] tr[data-task]').first().getAttribute('data-task')).toBe(`bulk-${String(BULK - 1).padStart(4, '0')}`);
    expect(await shown()).toBe(`${BULK} tasks`);
    expect(problems).toEqual([]);
    await context.close();
  });

  it('without the token shows how to sign in and no data', async () => {
    const context = await browser!.newContext();
    const page = await context.newPage();
    // The server answers 401 with a sign-in page, or serves the page and the page's /api/status gets 401.
    await page.goto(baseUrl);
    await page.waitForFunction(() => /\?token=/.test(document.body?.innerText ?? ''), null, { timeout: 5000 });
    const text = await page.locator('body').innerText();
    expect(text).toContain('baton serve');
    expect(await page.locator('tr[data-task], tr[data-node]').count()).toBe(0);
    for (const secret of [...NODE_IDS, cluster]) expect(text).not.toContain(secret);
    await context.close();
  });
});
