// One relay of bench/relay.ts until SIGTERM, run by plain Node from the compiled package (dist/), as
// `baton relay` runs in production: no TypeScript loader in the measured processes. Argument: a JSON spec.
import { defaultLogger } from '../dist/core/logger.js';
import { defineTopology, startRelay } from '../dist/relay/index.js';

const { config, node, batch, keys, amqpUrl } = JSON.parse(process.argv[2]);
// Warnings (pino, stderr, BATON_LOG_LEVEL) reach the bench's stderr: a healthy run has none.
const relay = await startRelay({ topology: defineTopology(config), node, amqpUrl, keys, batchSize: batch, logger: await defaultLogger() });
process.stdout.write('ready\n');
process.once('SIGTERM', () => void relay.close().then(() => process.exit(0)));
