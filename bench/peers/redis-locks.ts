/**
 * Peers on the same Redis: `redlock` (v4, one client, retryCount 0) and the plain pattern
 * `SET key token NX PX ttl` + a Lua compare-and-delete release. One op = acquire + release;
 * sequential and 10-way concurrent on distinct keys, over one ioredis connection.
 */
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { throughput, type OpsPerSec } from '../locks.js';

interface RedlockLock {
  unlock(): Promise<void>;
}
interface RedlockInstance {
  lock(resource: string, ttl: number): Promise<RedlockLock>;
  on(event: 'clientError', listener: (error: unknown) => void): void;
}
type RedlockCtor = new (clients: unknown[], options: Record<string, unknown>) => RedlockInstance;

const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

export async function redisPeerLocks(windowMs: number, run: string): Promise<{ redlock: OpsPerSec; setnx: OpsPerSec }> {
  const client = new Redis({ host: '127.0.0.1', port: 6379, maxRetriesPerRequest: 1 });
  try {
    const Redlock = createRequire(import.meta.url)('redlock') as RedlockCtor;
    const redlock = new Redlock([client], { retryCount: 0, driftFactor: 0.01 });
    redlock.on('clientError', () => undefined);
    const rl = async (worker: number) => {
      const lock = await redlock.lock(`bench-peer:${run}:redlock:${worker}`, 10_000);
      await lock.unlock();
    };
    const sha = (await client.script('LOAD', RELEASE)) as string;
    const nx = async (worker: number) => {
      const key = `bench-peer:${run}:setnx:${worker}`;
      const token = randomBytes(16).toString('hex');
      if ((await client.set(key, token, 'PX', 10_000, 'NX')) !== 'OK') throw new Error(`bench: ${key} held`);
      if ((await client.evalsha(sha, 1, key, token)) !== 1) throw new Error(`bench: ${key} release refused`);
    };
    for (let i = 0; i < 20; i++) {
      await rl(0);
      await nx(0);
    }
    const redlockOps = { seq: await throughput(1, windowMs, rl), c10: await throughput(10, windowMs, rl) };
    const setnxOps = { seq: await throughput(1, windowMs, nx), c10: await throughput(10, windowMs, nx) };
    return { redlock: redlockOps, setnx: setnxOps };
  } finally {
    client.disconnect();
  }
}
