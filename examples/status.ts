/**
 * Reads the cluster's status from the store, as any process can (no node needed):
 *   npx tsx examples/status.ts sqlite:./baton-example.db example
 */
import { openStore, readStatus } from 'baton-fleet';

const store = await openStore(process.argv[2] ?? 'sqlite:./baton-example.db', { cluster: process.argv[3] ?? 'example' });
try {
  const status = await readStatus(store);
  for (const task of status.tasks) {
    const owner = task.owner ? `${task.owner.host}:${task.owner.pid}` : 'nobody';
    console.log(`${task.unit}: owned by ${owner}, last run ${task.lastRun?.status ?? 'never'}`);
  }
} finally {
  await store.close();
}
