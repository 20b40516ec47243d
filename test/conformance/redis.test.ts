/**
 * The Redis store against the one conformance suite, on the shared server at 127.0.0.1:6379 (or
 * BATON_TEST_REDIS_URL). Server time cannot be faked, so `advance` really waits. Every run uses its own
 * key prefix and deletes its keys afterwards.
 */
import { Redis } from 'ioredis';
import { randomId } from '../../src/core/ids.js';
import { openRedisStore } from '../../src/stores/redis/index.js';
import { describeStoreConformance } from './store-conformance.js';

const SERVER = process.env.BATON_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

describeStoreConformance('redis', async () => {
  const prefix = `baton-conf-${randomId(4)}`;
  return {
    open: (cluster) => openRedisStore(`${SERVER}?prefix=${prefix}`, { cluster }),
    advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    close: async () => {
      const admin = new Redis(SERVER);
      for await (const keys of admin.scanStream({ match: `{${prefix}:*`, count: 500 })) {
        if ((keys as string[]).length > 0) await admin.del(...(keys as string[]));
      }
      await admin.quit();
    },
  };
});
