/**
 * Issue 22, ZooKeeper part: 3 baton node processes (TTL 5 s, one task every 500 ms) on a 3-server ZooKeeper
 * ensemble (scripts/ha-clusters.sh) while its leader is killed, a member the owner talks to is killed, and
 * the quorum is lost for 10 s (4lw `srvr` finds the leader). See test/helpers/ha-fleet.ts for the faults and how figures are measured.
 */
import { describeHa } from '../helpers/ha-suite.js';

describeHa('zookeeper');
