/**
 * The leader loop of the SQL peers (pg_advisory_lock, GET_LOCK): block until the lock is granted on a
 * dedicated connection, then "run" a tick every 250 ms while holding it; on SIGTERM release, close, exit.
 */
import type { Say } from '../util.js';

export interface BlockingLock {
  /** Resolves once the lock is held. */
  acquire(): Promise<void>;
  release(): Promise<unknown>;
  close(): Promise<unknown>;
}

export async function runBlockingLockLeader(lock: BlockingLock, say: Say): Promise<void> {
  let leading = false;
  const ticker = setInterval(() => {
    if (leading) say({ type: 'run' });
  }, 250);
  process.once('SIGTERM', () => {
    clearInterval(ticker);
    const release = leading ? lock.release() : Promise.resolve();
    leading = false;
    void release
      .catch(() => undefined)
      .then(() => lock.close())
      .catch(() => undefined)
      .finally(() => process.exit(0));
  });
  say({ type: 'ready' });
  await lock.acquire();
  leading = true;
  say({ type: 'owner' });
}
