/**
 * Issue 22, Redis with Sentinel (scripts/ha-replicas.sh: primary 6380, replica 6381, Sentinels
 * 26379–26381, down-after 1 s): 3 nodes on a `redis+sentinel://` URL, TTL 5 s, a task every 500 ms; the
 * primary is killed (-9) and the Sentinels promote the replica. The history checker finds no violation,
 * and runs resume within 5 s of the new primary accepting writes.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { HA_REDIS_URL, haScript as ha, haSummary, killMasterForSentinels, runHaFailover } from '../chaos/ha.js';

describe('Redis primary + replica + 3 Sentinels, failed over', () => {
  afterAll(() => {
    ha('redis-reset'); // leave the first primary in charge for the next run
  }, 90_000);

  it('3 nodes ride through kill -9 of the primary and the Sentinels’ failover', async () => {
    ha('redis-reset');
    const result = await runHaFailover({
      url: HA_REDIS_URL,
      cluster: `ha-redis-${Date.now()}`,
      fault: killMasterForSentinels,
    });
    console.log(haSummary('redis kill+sentinel failover', result));
    expect(result.check.violations).toEqual([]);
    expect(result.check.undecidable).toEqual([]);
    expect(result.resumeMs).toBeLessThan(5000);
  }, 120_000);
});
