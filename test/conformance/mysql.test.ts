/**
 * The conformance suite against the shared MariaDB/MySQL server (MYSQL_URL, default the local test
 * server). Store time is the server's and cannot be faked, so `advance` really waits.
 */
import { openMysqlStore } from '../../src/stores/mysql/index.js';
import { describeStoreConformance } from './store-conformance.js';

const URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

describeStoreConformance('mysql', async () => ({
  open: (cluster) => openMysqlStore(URL, { cluster }),
  advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  close: async () => {},
}));
