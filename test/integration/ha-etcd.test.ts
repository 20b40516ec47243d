/**
 * Issue 22, etcd part: 3 baton node processes (TTL 5 s, one task every 500 ms) on a 3-member etcd
 * cluster (scripts/ha-clusters.sh) while its leader is killed, a member the owner talks to is killed, and
 * the quorum is lost for 10 s. See test/helpers/ha-fleet.ts for the faults and how figures are measured.
 */
import { describeHa } from '../helpers/ha-suite.js';

describeHa('etcd');
