/**
 * A relay in a process of its own, for crash tests: `node --import tsx test/helpers/relay-process.ts
 * '<json {config, node, amqpUrl, keys, batchSize}>'`. Prints `{"type":"ready"}` once started, then
 * `{"type":"applied","n":…}` after each batch it commits; SIGTERM closes it cleanly.
 */
import { defineTopology } from '../../src/relay/topology.js';
import { startRelay } from '../../src/relay/relay-node.js';
import { recordingLogger } from './relay-fixture.js';

const { config, node, amqpUrl, keys, batchSize } = JSON.parse(process.argv[2] as string);
const logger = recordingLogger();
const relay = await startRelay({ topology: defineTopology(config), node, amqpUrl, keys, batchSize, logger });
process.stdout.write(`${JSON.stringify({ type: 'ready' })}\n`);
const timer = setInterval(() => {
  void relay.status().then((s) => process.stdout.write(`${JSON.stringify({ type: 'status', applied: s.applied })}\n`));
}, 100);
process.once('SIGTERM', () => {
  clearInterval(timer);
  void relay.close().then(() => process.exit(0));
});
