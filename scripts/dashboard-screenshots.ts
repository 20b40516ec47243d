/**
 * The dashboard screenshots of docs/monitoring.md, taken from a clean `baton demo` (three nodes, a
 * SIGKILLed owner, a graceful hand-over, 40 more tasks): `npm run build && npx tsx scripts/dashboard-screenshots.ts`
 * (the demo runs from dist/: it starts its nodes as `node dist/cli/main.js demo-node`).
 * A monitor in this process watches the demo's SQLite file; Chromium (/usr/bin/chromium) photographs the
 * page after the hand-over: docs/monitoring-dashboard.png (the overview) and docs/monitoring-task.png
 * (the watched task: runs, owners over time with the failover's gap). Leaves nothing behind.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';
import { silentLogger } from '../src/core/logger.js';
import { startMonitor } from '../src/monitor/monitor.js';

const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'baton-screenshots-'));
const file = join(dir, 'demo.db');
const token = 'screenshots-token-00000';
const demo = spawn(process.execPath, [join(root, 'dist/cli/main.js'), 'demo', '--file', file, '--cluster', 'demo', '--act-seconds', '12', '--tasks', '40'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
const lines = createInterface({ input: demo.stdout });
const seen = (pattern: RegExp) =>
  new Promise<void>((resolve, reject) => {
    lines.on('line', (line) => pattern.test(line) && resolve());
    demo.once('exit', (code) => reject(new Error(`the demo exited (${code}) before printing ${pattern}`)));
  });
const act1 = seen(/Act 1/);
const act3 = seen(/took over .* after the SIGTERM/);
try {
  await act1;
  const monitor = await startMonitor({ store: `sqlite:${file}`, cluster: 'demo', listen: '127.0.0.1:0', token, pollEvery: '250ms', logger: silentLogger });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1100 } });
    await page.goto(`${monitor.url}?token=${token}`);
    await act3;
    await new Promise((resolve) => setTimeout(resolve, 5000));
    await page.screenshot({ path: join(root, 'docs/monitoring-dashboard.png') });
    await page.click('[data-testid=tasks] tr[data-task="sync-orders"] a[data-link=task]');
    await page.locator('[data-testid=detail-runs] a[data-link=run]').first().click();
    await page.waitForSelector('[data-testid=run-view]:not([hidden])');
    await page.locator('[data-testid=detail]').screenshot({ path: join(root, 'docs/monitoring-task.png') });
  } finally {
    await browser.close();
    await monitor.close();
  }
} finally {
  demo.kill('SIGTERM');
  await new Promise((resolve) => (demo.exitCode !== null ? resolve(undefined) : demo.once('exit', resolve)));
  rmSync(dir, { recursive: true, force: true });
}
