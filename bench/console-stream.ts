/**
 * Bytes per second one dashboard viewer receives on the monitor's event stream with many tasks:
 * `npx tsx bench/console-stream.ts [--tasks 1000] [--seconds 60] [--src DIR]`.
 *
 * One node process (test/e2e/dashboard-node.ts) declares the tasks (each every minute, a 5 ms run) on a
 * fresh SQLite file; a monitor (`pollEvery` 500 ms, the default) from `--src` (default this checkout's
 * src/; give another checkout's src/ to measure its code) serves them; once every task has an owner,
 * one stream is read for `--seconds` and its bytes counted by message type (`status`, `status:delta`,
 * the events). Prints one JSON line. Nothing is left behind: the node is stopped and the file removed.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { tasks: { type: 'string', default: '1000' }, seconds: { type: 'string', default: '60' }, src: { type: 'string', default: join(import.meta.dirname, '..', 'src') } } });
const tasks = Number(values.tasks);
const seconds = Number(values.seconds);
const src = resolve(values.src);
const { startMonitor } = (await import(pathToFileURL(join(src, 'monitor', 'monitor.ts')).href)) as typeof import('../src/monitor/monitor.js');

const dir = mkdtempSync(join(tmpdir(), 'baton-console-stream-'));
const url = `sqlite:${join(dir, 'baton.db')}`;
const cluster = 'console-stream';
const token = 'console-stream-token-0000';
const node = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'test', 'e2e', 'dashboard-node.ts'), url, cluster, 'node-a', String(tasks)], { stdio: ['ignore', 'pipe', 'inherit'] });
try {
  await new Promise<void>((ready, fail) => {
    createInterface({ input: node.stdout }).on('line', (line) => line.includes('"ready"') && ready());
    node.once('exit', (code) => fail(new Error(`the node exited (${code}) before it was ready`)));
  });
  const monitor = await startMonitor({ store: url, cluster, listen: '127.0.0.1:0', token });
  try {
    const deadline = Date.now() + 120_000;
    while ((monitor.status()?.tasks.filter((t) => t.owner).length ?? 0) < tasks) {
      if (Date.now() > deadline) throw new Error(`only ${monitor.status()?.tasks.filter((t) => t.owner).length} of ${tasks} tasks owned after 2 minutes`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const res = await fetch(new URL('/api/events', monitor.url), { headers: { Authorization: `Bearer ${token}` } });
    const reader = res.body!.getReader();
    const bytes: Record<string, number> = {};
    const messages: Record<string, number> = {};
    let buffer = '';
    let total = 0;
    let rowsInDeltas = 0;
    const stop = Date.now() + seconds * 1000;
    const timer = setTimeout(() => void reader.cancel(), seconds * 1000);
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done || Date.now() > stop) break;
      total += value.byteLength;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end + 2);
        buffer = buffer.slice(end + 2);
        const type = /^event: (.+)$/m.exec(block)?.[1] ?? 'comment';
        bytes[type] = (bytes[type] ?? 0) + Buffer.byteLength(block);
        messages[type] = (messages[type] ?? 0) + 1;
        if (type === 'status:delta') rowsInDeltas += ((JSON.parse(/^data: (.+)$/m.exec(block)?.[1] ?? '{}') as { tasks?: unknown[] }).tasks ?? []).length;
      }
    }
    clearTimeout(timer);
    const first = bytes.status ?? 0;
    process.stdout.write(
      `${JSON.stringify({ src, tasks, seconds, bytesPerSecond: Math.round(total / seconds), afterFirstSnapshotPerSecond: Math.round((total - first) / seconds), firstSnapshotBytes: first, rowsInDeltas, bytes, messages })}\n`,
    );
  } finally {
    await monitor.close();
  }
} finally {
  node.kill('SIGTERM');
  await new Promise((r) => node.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
