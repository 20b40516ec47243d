/**
 * Bad input: every mistake is a BatonError with a stable `code` and a message naming the field and the
 * value, raised before anything is opened or started, so nothing is left half-running.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createCluster, type ClusterOptions } from '../../src/node/node.js';
import { resolveSessionTiming, type SessionTimingOptions } from '../../src/cluster/session-timing.js';
import {
  BatonError,
  DurationError,
  ScheduleError,
  StoreUnavailableError,
  StoreUrlError,
  TaskDuplicateError,
  type BatonErrorCode,
} from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { parseStoreUrl } from '../../src/stores/open-store.js';
import { MemoryBackend, sharedMemoryBackend } from '../../src/stores/memory/memory-store.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { Sim } from '../helpers/sim.js';

/** Runs `fn` and returns what it threw (synchronously or as a rejection). */
async function caught(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error, nothing was thrown');
}

async function expectBatonError(fn: () => unknown, code: BatonErrorCode, ...mentions: (string | RegExp)[]): Promise<BatonError> {
  const error = await caught(fn);
  expect(error).toBeInstanceOf(BatonError);
  const batonError = error as BatonError;
  expect(batonError.code).toBe(code);
  for (const m of mentions) expect(batonError.message).toMatch(m);
  return batonError;
}

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-config-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('session timing validation', () => {
  it('derives defaults from the TTL', () => {
    expect(resolveSessionTiming()).toEqual({ ttlMs: 5000, renewEveryMs: 1666, safetyMarginMs: 1000 });
    expect(resolveSessionTiming({ ttl: '1s' })).toEqual({ ttlMs: 1000, renewEveryMs: 333, safetyMarginMs: 200 });
    expect(resolveSessionTiming({ ttl: '10s', renewEvery: '2s', safetyMargin: '1s' })).toEqual({
      ttlMs: 10_000,
      renewEveryMs: 2000,
      safetyMarginMs: 1000,
    });
  });

  const cases: [string, SessionTimingOptions, BatonErrorCode, ...(string | RegExp)[]][] = [
    ['ttl 0', { ttl: 0 }, 'CONFIG_INVALID', /ttl/, /1000ms/, /got 0ms/],
    ['a negative ttl', { ttl: -5 }, 'DURATION_INVALID', /ttl/, /-5/],
    ['ttl below 1s', { ttl: 500 }, 'CONFIG_INVALID', /ttl: must be at least 1000ms/, /got 500ms/],
    ['ttl "900ms"', { ttl: '900ms' }, 'CONFIG_INVALID', /ttl/, /900ms/],
    ['ttl that is not a duration', { ttl: 'soon' }, 'DURATION_INVALID', /ttl/, /"soon"/],
    ['renewEvery equal to ttl', { ttl: '3s', renewEvery: '3s' }, 'CONFIG_INVALID', /renewEvery \(3000ms\)/, /ttl \(3000ms\)/],
    ['renewEvery above ttl', { ttl: '3s', renewEvery: '5s' }, 'CONFIG_INVALID', /renewEvery \(5000ms\)/, /ttl \(3000ms\)/],
    [
      'renewEvery + safetyMargin reaching ttl',
      { ttl: 3000, renewEvery: 2000, safetyMargin: 1000 },
      'CONFIG_INVALID',
      /renewEvery \(2000ms\)/,
      /safetyMargin \(1000ms\)/,
      /ttl \(3000ms\)/,
    ],
    ['renewEvery 0', { ttl: 3000, renewEvery: 0 }, 'CONFIG_INVALID', /renewEvery/, /0ms/],
    ['safetyMargin 0', { ttl: 3000, safetyMargin: 0 }, 'CONFIG_INVALID', /safetyMargin/, /0ms/],
    ['renewEvery "10x"', { ttl: 3000, renewEvery: '10x' }, 'DURATION_INVALID', /renewEvery/, /"10x"/],
  ];
  for (const [name, options, code, ...mentions] of cases) {
    it(`rejects ${name}`, async () => {
      await expectBatonError(() => resolveSessionTiming(options), code, ...mentions);
    });
    it(`rejects ${name} in createCluster without opening the store`, async () => {
      const dir = tempDir();
      const file = join(dir, 'baton.db');
      await expectBatonError(
        () => createCluster({ store: `sqlite:${file}`, name: 'cfg', logger: silentLogger, ...options } as ClusterOptions),
        code,
        ...mentions,
      );
      expect(readdirSync(dir)).toEqual([]);
    });
  }

  it('rejects scheduler timings that conflict with the TTL, naming both', async () => {
    const store = new MemoryBackend({ clock: new FakeClock() }).connect('cfg');
    await expectBatonError(
      () => createCluster({ store, name: 'cfg', logger: silentLogger, ttl: '2s', scanEvery: '2s' }),
      'CONFIG_INVALID',
      /scanEvery \(2000ms\)/,
      /ttl \(2000ms\)/,
    );
    await expectBatonError(() => createCluster({ store, name: 'cfg', logger: silentLogger, scanEvery: '5ms' }), 'CONFIG_INVALID', /scanEvery/, /5ms/);
    await expectBatonError(() => createCluster({ store, name: 'cfg', logger: silentLogger, claimDelay: 'later' }), 'DURATION_INVALID', /claimDelay/, /"later"/);
    await expectBatonError(
      () => createCluster({ store, name: 'cfg', logger: silentLogger, rebalanceAfter: '1q' }),
      'DURATION_INVALID',
      /rebalanceAfter/,
      /"1q"/,
    );
    expect(await store.listSessions()).toEqual([]);
  });
});

describe('task declarations', () => {
  async function cluster() {
    const clock = new FakeClock();
    const store = new MemoryBackend({ clock }).connect('cfg');
    return createCluster({ store, name: 'cfg', clock, logger: silentLogger });
  }

  it('rejects a task name declared twice (TASK_DUPLICATE) and keeps the first declaration', async () => {
    const c = await cluster();
    c.task('sync', { every: '1s' }, () => undefined);
    const error = await expectBatonError(() => c.task('sync', { every: '5s' }, () => undefined), 'TASK_DUPLICATE', /"sync"/, /twice/);
    expect(error).toBeInstanceOf(TaskDuplicateError);
    await c.start();
    expect(Object.keys(c.node.tasks)).toEqual(['sync']);
    expect(c.node.tasks.sync?.schedule).toBe('every 1s');
    await c.close();
  });

  const cases: [string, unknown, unknown, BatonErrorCode, ...(string | RegExp)[]][] = [
    ['an invalid cron', 'job', { cron: 'not a cron' }, 'SCHEDULE_INVALID', /task "job"/, /cron/, /"not a cron"/],
    ['a cron with too few fields', 'job', { cron: '* * *' }, 'SCHEDULE_INVALID', /task "job"/, /"\* \* \*"/],
    ['a cron out of range', 'job', { cron: '0 61 * * * *' }, 'SCHEDULE_INVALID', /task "job"/, /"0 61 \* \* \* \*"/],
    ['a cron that never fires', 'job', { cron: '0 0 30 2 *' }, 'SCHEDULE_INVALID', /task "job"/, /"0 0 30 2 \*"/],
    ['an empty cron', 'job', { cron: '' }, 'SCHEDULE_INVALID', /task "job"/, /cron/],
    ['an unknown time zone', 'job', { cron: '0 * * * *', timezone: 'Mars/Olympus' }, 'SCHEDULE_INVALID', /timezone/, /"Mars\/Olympus"/],
    ['a time zone with every', 'job', { every: '1s', timezone: 'UTC' }, 'CONFIG_INVALID', /task "job"/, /timezone/],
    ['an invalid duration "10x"', 'job', { every: '10x' }, 'DURATION_INVALID', /task "job": every/, /"10x"/],
    ['an empty duration', 'job', { every: '' }, 'DURATION_INVALID', /task "job": every/],
    ['a negative interval', 'job', { every: -1000 }, 'DURATION_INVALID', /task "job": every/, /-1000/],
    ['every below 100ms', 'job', { every: '50ms' }, 'SCHEDULE_INVALID', /task "job": every/, /100ms/, /"50ms"/],
    ['every 0', 'job', { every: 0 }, 'SCHEDULE_INVALID', /task "job": every/, /got 0/],
    ['both every and cron', 'job', { every: '1s', cron: '* * * * *' }, 'CONFIG_INVALID', /task "job"/, /exactly one of "every"/],
    ['neither every nor cron', 'job', {}, 'CONFIG_INVALID', /task "job"/, /exactly one of "every"/],
    ['an unknown option', 'job', { every: '1s', retry: 3 }, 'CONFIG_INVALID', /task "job"/, /unknown option "retry"/],
    ['a misspelt option', 'job', { evry: '1s' }, 'CONFIG_INVALID', /unknown option "evry"/],
    ['options that are not an object', 'job', null, 'CONFIG_INVALID', /task "job": options/],
    ['history 0', 'job', { every: '1s', history: 0 }, 'CONFIG_INVALID', /task "job": history/, /got 0/],
    ['a fractional history', 'job', { every: '1s', history: 2.5 }, 'CONFIG_INVALID', /history/, /2\.5/],
    ['a name with a space', 'my job', { every: '1s' }, 'CONFIG_INVALID', /task name/, /"my job"/],
    ['an empty name', '', { every: '1s' }, 'CONFIG_INVALID', /task name/, /""/],
    ['a name with a slash', 'a/b', { every: '1s' }, 'CONFIG_INVALID', /task name/, /"a\/b"/],
    ['a name that is not a string', 42, { every: '1s' }, 'CONFIG_INVALID', /task name/, /42/],
  ];
  for (const [what, name, options, code, ...mentions] of cases) {
    it(`rejects ${what}`, async () => {
      const c = await cluster();
      await expectBatonError(() => c.task(name as string, options as never, () => undefined), code, ...mentions);
      expect(c.state).toBe('new');
      await c.close();
    });
  }

  it('rejects a handler that is not a function', async () => {
    const c = await cluster();
    await expectBatonError(() => c.task('job', { every: '1s' }, 'run' as never), 'CONFIG_INVALID', /task "job": handler/);
    await c.close();
  });

  it('keeps the cluster usable after a rejected declaration: the bad task is not declared', async () => {
    const sim = new Sim();
    const node = await sim.node('a', [['good', { every: '1s' }]], { start: false });
    expect(() => node.cluster.task('bad', { every: '10x' }, () => undefined)).toThrow(DurationError);
    await node.cluster.start();
    await sim.advance(3000);
    expect(Object.keys(node.cluster.node.tasks)).toEqual(['good']);
    expect(sim.starts.map((s) => s.task)).toContain('good');
    expect((await sim.owners()).has('bad')).toBe(false);
    await sim.closeAll();
  });

  it('refuses declarations and a second start() once started (INVALID_STATE)', async () => {
    const c = await cluster();
    await c.start();
    await expectBatonError(() => c.task('late', { every: '1s' }, () => undefined), 'INVALID_STATE', /"late"/, /before start\(\)/);
    await expectBatonError(() => c.start(), 'INVALID_STATE', /start\(\)/);
    await c.close();
    await expectBatonError(() => c.start(), 'INVALID_STATE');
  });
});

describe('cluster options', () => {
  const store = () => new MemoryBackend({ clock: new FakeClock() }).connect('cfg');

  for (const name of ['bad name', '', '-leading-dash', 'a/b', 'x'.repeat(65), 'émoji']) {
    it(`rejects the cluster name ${JSON.stringify(name.length > 20 ? `${name.slice(0, 10)}…` : name)}`, async () => {
      await expectBatonError(() => createCluster({ store: store(), name, logger: silentLogger }), 'CONFIG_INVALID', /^name:/, JSON.stringify(name));
    });
  }

  it('rejects a cluster name that is not a string, and missing options', async () => {
    await expectBatonError(() => createCluster({ store: store(), name: 7 as never, logger: silentLogger }), 'CONFIG_INVALID', /name/, /7/);
    await expectBatonError(() => createCluster(undefined as never), 'CONFIG_INVALID', /options/);
    await expectBatonError(() => createCluster({ name: 'cfg' } as never), 'CONFIG_INVALID', /store: required/);
  });

  it('rejects a store opened for another cluster', async () => {
    await expectBatonError(() => createCluster({ store: store(), name: 'other', logger: silentLogger }), 'CONFIG_INVALID', /"cfg"/, /"other"/);
  });

  const urls: [string, (string | RegExp)[]][] = [
    ['foo:bar', [/"foo:bar"/, /unknown scheme "foo:"/]],
    ['sqlite:', [/"sqlite:"/, /missing file path/]],
    ['sqlite://', [/missing file path/]],
    ['sqlite::memory:', [/in-memory SQLite/]],
    ['sqlite:./x.db?timeout=5', [/unknown option "timeout"/]],
    ['sqlite:./x.db?pollMs=1', [/pollMs/, /"1"/]],
    ['no-scheme', [/"no-scheme"/, /missing scheme/]],
    ['memory:bad/name', [/memory store name/]],
    ['', [/expected a URL/]],
  ];
  for (const [url, mentions] of urls) {
    it(`rejects the store URL ${JSON.stringify(url)} (STORE_URL_INVALID)`, async () => {
      const error = await expectBatonError(() => createCluster({ store: url, name: 'cfg', logger: silentLogger }), 'STORE_URL_INVALID', ...mentions);
      expect(error).toBeInstanceOf(StoreUrlError);
    });
  }

  // Server stores are being added: whether their scheme is refused (not available in this build) or the
  // store is tried and cannot connect, the answer is a prompt BatonError naming the store — never a hang,
  // never a raw driver error. Hosts under ".invalid" never resolve (RFC 2606), so no real server is reached.
  for (const url of ['postgres://x.invalid/db', 'mysql://db.invalid/app', 'redis://cache.invalid:6379']) {
    it(`rejects the unusable server store URL ${JSON.stringify(url)} with a BatonError naming it`, async () => {
      const error = await caught(() => createCluster({ store: url, name: 'cfg', logger: silentLogger }));
      expect(error).toBeInstanceOf(BatonError);
      expect(['STORE_URL_INVALID', 'STORE_UNAVAILABLE']).toContain((error as BatonError).code);
      expect((error as BatonError).message).toContain(url.split(':')[0]!);
      expect((error as BatonError).message).toMatch(/\.invalid/);
    });
  }

  it('never shows credentials of a store URL in its error', async () => {
    const error = await caught(() => createCluster({ store: 'postgres://app:s3cret@db.invalid/baton', name: 'cfg', logger: silentLogger }));
    expect(error).toBeInstanceOf(BatonError);
    expect((error as BatonError).message).toMatch(/postgres/);
    expect((error as BatonError).message).not.toContain('s3cret');
    expect(() => parseStoreUrl('foo://u:s3cret@h/x')).toThrow(/u:\*\*\*@h/);
    expect(() => parseStoreUrl('foo://u:s3cret@h/x')).not.toThrow(/s3cret/);
  });

  it('rejects an SQLite path whose directory does not exist (STORE_UNAVAILABLE), naming the path', async () => {
    const dir = tempDir();
    const file = join(dir, 'missing', 'baton.db');
    const error = await expectBatonError(
      () => createCluster({ store: `sqlite:${file}`, name: 'cfg', logger: silentLogger }),
      'STORE_UNAVAILABLE',
      file,
      /does not exist/,
    );
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect(existsSync(join(dir, 'missing'))).toBe(false);
  });

  it('opens nothing when an option is bad: no session, no file, no timer', async () => {
    const clock = new FakeClock();
    const backend = sharedMemoryBackend(`cfg-half-${process.pid}`, clock);
    await expectBatonError(
      () => createCluster({ store: `memory:cfg-half-${process.pid}`, name: 'cfg', clock, logger: silentLogger, ttl: '10ms' }),
      'CONFIG_INVALID',
      /ttl/,
    );
    expect(await backend.connect('cfg').listSessions()).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('start() against an unreachable store rejects and leaves nothing running', async () => {
    const clock = new FakeClock();
    const backend = new MemoryBackend({ clock });
    const handle = backend.connect('cfg');
    const c = await createCluster({ store: handle, name: 'cfg', clock, logger: silentLogger });
    c.task('job', { every: '1s' }, () => undefined);
    backend.sever(handle);
    await expect(c.start()).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(c.state).toBe('closed');
    expect(clock.pendingTimers).toBe(0);
    backend.heal(handle);
    await clock.advance(10_000);
    expect(await backend.connect('cfg').listSessions()).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
    await c.close();
  });

  it('reports schedule errors as ScheduleError instances', async () => {
    const c = await createCluster({ store: store(), name: 'cfg', logger: silentLogger });
    expect(() => c.task('job', { cron: 'nope' }, () => undefined)).toThrow(ScheduleError);
    await c.close();
  });
});

describe('createCluster: unknown options', () => {
  it('refuses a misspelt option instead of ignoring it', async () => {
    const { createCluster } = await import('../../src/node/node.js');
    await expect(createCluster({ store: 'memory:unknown-opt', tll: 3000 } as never)).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining('"tll"'),
    });
  });
});
