/**
 * The conformance suite against a real PostgreSQL server (BATON_TEST_POSTGRES_URL, default the local test
 * database). Server time cannot be faked, so `advance` really waits. The rows of the clusters the suite
 * made are deleted afterwards, so runs do not pile up in the shared database.
 */
import { openPostgresStore } from '../../src/stores/postgres/index.js';
import { describeStoreConformance } from './store-conformance.js';
import { dropPostgresClusters } from '../helpers/postgres.js';

const POSTGRES_URL = process.env.BATON_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

describeStoreConformance('postgres', async () => {
  const clusters = new Set<string>();
  return {
    open: (cluster) => {
      clusters.add(cluster);
      return openPostgresStore(POSTGRES_URL, { cluster });
    },
    advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    close: () => dropPostgresClusters(POSTGRES_URL, [...clusters]),
  };
});
