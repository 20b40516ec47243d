import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryBackend } from '../../src/stores/memory/memory-store.js';
import { SqliteStore } from '../../src/stores/sqlite/sqlite-store.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { describeStoreConformance } from './store-conformance.js';

describeStoreConformance('memory', async () => {
  const clock = new FakeClock();
  const backend = new MemoryBackend({ clock });
  return { open: async (cluster) => backend.connect(cluster), advance: (ms) => clock.advance(ms), close: async () => {} };
});

describeStoreConformance('sqlite', async () => {
  const clock = new FakeClock();
  const dir = mkdtempSync(join(tmpdir(), 'baton-conformance-'));
  const file = join(dir, 'baton.db');
  return {
    open: (cluster) => SqliteStore.open({ file, cluster, clock }),
    advance: (ms) => clock.advance(ms),
    close: async () => rmSync(dir, { recursive: true, force: true }),
  };
});
