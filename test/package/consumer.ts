/**
 * A user's first program, as package.test.ts runs it in a temporary project that installed the packed
 * tarball (and nothing of this repository): it imports every subpath export, so `tsc` checks their
 * declarations from the outside and `node` their resolution. It runs one task on the store URL given as
 * its argument and prints one JSON line.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BatonError, createCluster, type TaskContext } from 'baton-fleet';
import { openStore, type Store } from 'baton-fleet/stores';
import { startMonitor, type MonitorOptions } from 'baton-fleet/monitor';
import { httpSync, type HttpSyncOptions } from 'baton-fleet/sync';
import { defineTopology, type Topology } from 'baton-fleet/relay';
import { FakeClock, MemoryBackend } from 'baton-fleet/testing';

const url = process.argv[2];
if (!url) throw new Error('usage: node consumer.js STORE_URL');
const manifest = JSON.parse(readFileSync(fileURLToPath(import.meta.resolve('baton-fleet/package.json')), 'utf8')) as { name: string; version: string };

// The testing tools: a store on a fake clock, no sleeping.
const clock = new FakeClock();
const memory: Store = new MemoryBackend({ clock }).connect('consumer');
await memory.close();

// The store itself, then one node running one task on it until its first run committed a checkpoint.
const store = await openStore(url, { cluster: 'consumer' });
const kind = store.kind;
await store.close();
const cluster = await createCluster({ store: url, name: 'consumer' });
const ran = new Promise<number>((resolve, reject) => {
  cluster.task<number>('hello', { every: '1s' }, async (ctx: TaskContext<number>) => {
    const count = ((await ctx.checkpoint.get()) ?? 0) + 1;
    await ctx.checkpoint.commit(count);
    resolve(count);
  });
  setTimeout(() => reject(new BatonError('INVALID_STATE', 'consumer: no run within 20 s')), 20_000).unref();
});
await cluster.start();
const runs = await ran;
await cluster.close();

// The other entry points: their values are there, and their types are usable.
const monitorOptions: Pick<MonitorOptions, 'cluster'> = { cluster: 'consumer' };
const syncTarget: HttpSyncOptions['target']['db'] | undefined = undefined;
const topology: Topology | undefined = undefined;
const entryPoints = { startMonitor, httpSync, defineTopology };
for (const [name, value] of Object.entries(entryPoints)) {
  if (typeof value !== 'function') throw new Error(`consumer: ${name} is not a function`);
}
process.stdout.write(`${JSON.stringify({ package: manifest.name, version: manifest.version, store: kind, runs, checked: [monitorOptions.cluster, syncTarget, topology].length })}\n`);
