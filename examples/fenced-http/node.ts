/**
 * A baton node that writes to an HTTP API taking the fencing token as a header (api.ts): the new owner
 * announces its token in `onAcquire` (POST /fence), and every write carries it (PUT /report). The API
 * refuses a smaller token with 409, so a node that was paused and woke after another took the task over
 * cannot overwrite the newer owner's report — even before the newer owner's first run.
 *
 *   npx tsx examples/fenced-http/api.ts                                   # the API, port 8787
 *   FENCED_API=http://127.0.0.1:8787 npx tsx examples/fenced-http/node.ts # in several terminals
 */
import { createCluster, NotOwnerError } from 'baton-fleet';

const store = process.argv[2] ?? 'sqlite:./baton-example.db';
const api = process.env.FENCED_API ?? 'http://127.0.0.1:8787';

/** A request carrying the token; a 409 means a newer owner exists. */
async function fenced(method: string, path: string, token: bigint, body?: string, signal?: AbortSignal): Promise<void> {
  const res = await fetch(`${api}${path}`, { method, headers: { 'fencing-token': token.toString() }, ...(body === undefined ? {} : { body }), ...(signal ? { signal } : {}) });
  if (res.status === 409) throw new NotOwnerError(`${method} ${path}: ${await res.text()}`);
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}`);
}

const cluster = await createCluster({ store, name: 'fenced-http-example' });

cluster.task('publish-report', {
  every: '2s',
  onAcquire: async (ctx) => {
    await fenced('POST', '/fence', ctx.token, undefined, ctx.signal);
    console.log(`${cluster.node.id} fenced the API with token ${ctx.token}`);
  },
}, async (ctx) => {
  const report = `report for ${ctx.tick.toISOString()} by ${cluster.node.id}`;
  await new Promise((resolve) => setTimeout(resolve, 100)); // build it
  ctx.assertOwner(); // right before the side effect
  await fenced('PUT', '/report', ctx.token, report, ctx.signal);
  console.log(`${cluster.node.id} published tick ${ctx.tick.toISOString()} with token ${ctx.token}`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cluster.close().then(() => process.exit(0)));
}

await cluster.start();
console.log(`${cluster.node.id} joined cluster "${cluster.name}" on ${store}, API ${api}`);
