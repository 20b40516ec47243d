/**
 * SQLite crash failover does not wait for the TTL: a process that provably no longer exists (pid gone, or
 * pid reused by a process with another start time) loses its session at once; a live or unknowable one
 * keeps it until the TTL.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { currentProcessIdentity, processState } from '../../src/core/process-identity.js';
import { SqliteStore } from '../../src/stores/sqlite/sqlite-store.js';
import { nodeInfo } from '../conformance/store-conformance.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const TTL = 60_000;

describe('process identity', () => {
  it('knows this process is alive and a reused pid is not the same process', () => {
    const self = currentProcessIdentity();
    expect(processState(self)).toBe('alive');
    expect(processState({ ...self, startTicks: '1' })).toBe('gone');
    expect(processState({ ...self, pid: 2 ** 22 + 12345 })).toBe('gone');
    // Another boot or another pid namespace: cannot tell, so never "gone".
    expect(processState({ ...self, bootId: 'another-boot' })).toBe('unknown');
    expect(processState({ ...self, pidNamespace: 'pid:[1]' })).toBe('unknown');
    expect(processState({ host: self.host, pid: self.pid })).toBe('unknown');
  });
});

describe('SQLite crash detection', () => {
  it('frees the keys of a SIGKILLed process long before its TTL', async () => {
    const file = join(dir, 'crash.db');
    const script = `
      import { SqliteStore } from './dist/stores/sqlite/sqlite-store.js';
      import { currentProcessIdentity } from './dist/core/process-identity.js';
      const store = await SqliteStore.open({ file: ${JSON.stringify(file)}, cluster: 'crash' });
      const info = { id: 'victim', host: 'h', pid: process.pid, version: 't', labels: {}, startedAt: 0, process: currentProcessIdentity(), tasks: {} };
      const { id } = await store.openSession(info, ${TTL});
      const r = await store.tryAcquire('task/x', id);
      console.log(JSON.stringify({ acquired: r.acquired }));
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [line] = await new Promise<string[]>((resolve) =>
      createInterface({ input: child.stdout }).once('line', (l) => resolve([l])),
    );
    expect(JSON.parse(line as string)).toEqual({ acquired: true });

    const store = await SqliteStore.open({ file, cluster: 'crash' });
    try {
      const me = await store.openSession(nodeInfo('survivor'), TTL);
      expect((await store.tryAcquire('task/x', me.id)).acquired).toBe(false); // the owner is alive
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
      const r = await store.tryAcquire('task/x', me.id);
      expect(r.acquired).toBe(true);
      expect((await store.listSessions()).map((s) => s.info.id)).toEqual(['survivor']);
    } finally {
      child.kill('SIGKILL');
      await store.close();
    }
  });

  it('reaps a dead process in the background, so watchers hear of it without an acquisition', async () => {
    const file = join(dir, 'reap.db');
    const store = await SqliteStore.open({ file, cluster: 'reap', pollMs: 10, crashCheckMs: 10 });
    try {
      const ghost = { ...nodeInfo('ghost'), process: { ...currentProcessIdentity(), startTicks: '1' } };
      const alive = nodeInfo('alive');
      await store.openSession(ghost, TTL);
      await store.openSession(alive, TTL);
      const changed = new Promise<void>((resolve) => {
        const unwatch = store.watch((c) => {
          if (c.scope === 'sessions') {
            unwatch();
            resolve();
          }
        });
      });
      await changed;
      expect((await store.listSessions()).map((s) => s.info.id)).toEqual(['alive']);
    } finally {
      await store.close();
    }
  });
});
