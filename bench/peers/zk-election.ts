/**
 * Peer: ZooKeeper's leader-election recipe with `node-zookeeper-client`, as its documentation describes
 * it. Each candidate creates an EPHEMERAL_SEQUENTIAL znode under the election path; the lowest sequence
 * number leads; every other candidate watches only its predecessor (`exists` with a watch, so a leader's
 * end wakes one candidate, not the herd) and looks again when it is deleted. While leading it "runs" a
 * tick every 250 ms. SIGTERM closes the ZooKeeper session, which deletes its znode at once (graceful);
 * after SIGKILL the server deletes it when the session times out (`sessionTimeoutMs`, the TTL's
 * counterpart). It has no self-fencing: a paused leader keeps "running" after waking until it hears that
 * its session expired.
 */
import type { ChildGroup } from '../children.js';
import type { Say } from '../util.js';

export interface ZkElectionChildConfig {
  readonly id: string;
  /** `host:port` of the ZooKeeper server. */
  readonly servers: string;
  /** The election's parent znode, e.g. `/baton-bench-election-<run>`. */
  readonly path: string;
  readonly sessionTimeoutMs: number;
}

export async function runZkElectionChild(c: ZkElectionChildConfig, say: Say): Promise<void> {
  const zk = (await import('node-zookeeper-client')).default;
  const client = zk.createClient(c.servers, { sessionTimeout: c.sessionTimeoutMs, retries: 0 });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`zk-election ${c.id}: no connection to ${c.servers}`)), 10_000);
    client.once('connected', () => {
      clearTimeout(timer);
      resolve();
    });
    client.connect();
  });
  const call = <T>(fn: (done: (error: unknown, value: T) => void) => void): Promise<T> =>
    new Promise((resolve, reject) => fn((error, value) => (error ? reject(error) : resolve(value))));
  let leading = false;
  const ticker = setInterval(() => {
    if (leading) say({ type: 'run' });
  }, 250);
  client.on('expired', () => {
    if (leading) say({ type: 'lost', reason: 'session expired' });
    leading = false;
  });
  process.once('SIGTERM', () => {
    leading = false;
    clearInterval(ticker);
    client.once('disconnected', () => process.exit(0));
    client.close();
  });

  await call<string>((done) => client.mkdirp(c.path, (e, p) => done(e, p)));
  const mine = await call<string>((done) => client.create(`${c.path}/n_`, Buffer.alloc(0), zk.CreateMode.EPHEMERAL_SEQUENTIAL, (e, p) => done(e, p)));
  const myName = mine.slice(c.path.length + 1);
  say({ type: 'ready' });
  // Looks at the candidates: leads when first, else watches the predecessor and looks again when it goes.
  const look = async (): Promise<void> => {
    const children = (await call<string[]>((done) => client.getChildren(c.path, (e, list) => done(e, list)))).sort();
    const index = children.indexOf(myName);
    if (index < 0) return; // our znode is gone: the session expired (reported above)
    if (index === 0) {
      leading = true;
      say({ type: 'owner' });
      return;
    }
    const predecessor = `${c.path}/${children[index - 1] as string}`;
    const exists = await call<unknown>((done) =>
      client.exists(
        predecessor,
        () => void look().catch(() => undefined),
        (e, stat) => done(e, stat),
      ),
    );
    if (!exists) await look(); // gone between the listing and the watch
  };
  await look();
}

export function zkElectionFleet(servers: string, path: string, sessionTimeoutMs: number) {
  return (group: ChildGroup, id: string) => group.spawn(id, { kind: 'zk-election', servers, path, sessionTimeoutMs });
}
