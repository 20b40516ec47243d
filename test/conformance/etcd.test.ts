/**
 * The Store conformance suite against the shared etcd server (127.0.0.1:2379, or BATON_ETCD_URL).
 * Store time is etcd's lease clock, so `advance` really waits. Every run uses fresh cluster names, and
 * a prefix of its own, so runs never see each other's keys.
 */
import { openEtcdStore } from '../../src/stores/etcd/index.js';
import { describeStoreConformance } from './store-conformance.js';

const ETCD_URL = process.env.BATON_ETCD_URL ?? 'etcd://127.0.0.1:2379';

describeStoreConformance('etcd', async () => ({
  open: (cluster) => openEtcdStore(`${ETCD_URL}?prefix=/baton-test`, { cluster }),
  advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  close: async () => {},
}));
