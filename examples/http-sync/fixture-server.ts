/**
 * The example's orders API on its own, for running service.ts by hand: 300 orders, a few new and
 * changed ones every 200 ms, every 20th one invalid, and some faults (500s, 429s, hangs, malformed
 * JSON, replayed and shuffled pages). Ctrl-C stops it.
 *
 *   npx tsx examples/http-sync/fixture-server.ts [--calm]     # --calm: no faults
 */
import { FixtureApi } from './fixture-api.js';

const calm = process.argv.includes('--calm');
const api = await FixtureApi.start({
  seed: Date.now() % 100_000,
  initial: 300,
  invalidEvery: 20,
  faults: calm ? {} : { error500: 0.05, tooMany: 0.02, hang: 0.02, malformed: 0.03, duplicate: 0.04, stale: 0.04, shuffle: 0.1 },
});
api.startChanging({ everyMs: 200, inserts: 2, updates: 2 });
console.log(`orders API on ${api.url}/orders${calm ? '' : ' (with faults)'}; Ctrl-C stops it`);
process.once('SIGINT', () => void api.close().then(() => process.exit(0)));
process.once('SIGTERM', () => void api.close().then(() => process.exit(0)));
