/**
 * The conformance suite against the shared ZooKeeper server (127.0.0.1:2181, or BATON_ZK_URL).
 * Store time is the server's, so the harness really waits.
 */
import { openZookeeperStore } from '../../src/stores/zookeeper/index.js';
import { describeStoreConformance } from './store-conformance.js';

const URL = process.env.BATON_ZK_URL ?? 'zk://127.0.0.1:2181/baton-test';

describeStoreConformance('zookeeper', async () => ({
  open: (cluster) => openZookeeperStore(URL, { cluster }),
  advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  close: async () => {},
}));
