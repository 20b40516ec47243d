/**
 * Fuzzing of every parser of untrusted input with fast-check: schedules (cron, every, at), durations,
 * task definitions, cluster options (validated up to before a store is opened), session timing, and store
 * URLs (the generic parser and each server store's own). Each must succeed or throw a BatonError — never
 * another error, never a crash, never a slow case (each case is timed against a bound).
 *
 * Cases per parser: BATON_FUZZ_RUNS (default 5,000, so `npm test` stays fast). The long mode, ≥ 100,000
 * cases each, is:
 *
 *     BATON_FUZZ_RUNS=100000 npx vitest run test/fuzz --testTimeout=3600000
 *
 * A failure prints fast-check's seed and path: re-run with BATON_FUZZ_SEED=<seed> to reproduce it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatonError } from '../../src/core/errors.js';
import { parseDuration } from '../../src/core/duration.js';
import { parseSchedule } from '../../src/scheduler/schedule.js';
import { defineTask } from '../../src/scheduler/task.js';
import { resolveSessionTiming } from '../../src/cluster/session-timing.js';
import { createCluster } from '../../src/node/node.js';
import { silentLogger } from '../../src/core/logger.js';
import { parseStoreUrl } from '../../src/stores/open-store.js';
import { parsePostgresUrl } from '../../src/stores/postgres/url.js';
import { parseMysqlUrl } from '../../src/stores/mysql/mysql-url.js';
import { parseRedisUrl } from '../../src/stores/redis/url.js';
import { parseEtcdUrl } from '../../src/stores/etcd/url.js';
import { parseZookeeperUrl } from '../../src/stores/zookeeper/index.js';
import type { Store } from '../../src/stores/contract.js';

const RUNS = Number(process.env.BATON_FUZZ_RUNS ?? 5000);
const SEED = process.env.BATON_FUZZ_SEED === undefined ? undefined : Number(process.env.BATON_FUZZ_SEED);
/** A parser taking longer than this on one input counts as a hang (catastrophic backtracking, a loop). */
const CASE_BOUND_MS = 250;
const TEST_TIMEOUT_MS = Math.max(60_000, RUNS * 20);
const params = { numRuns: RUNS, ...(SEED !== undefined ? { seed: SEED } : {}) };

/** Runs `fn`; passes when it returns or throws a BatonError within the time bound. */
function onlyBatonErrors(what: string, input: unknown, fn: () => unknown): void {
  const started = performance.now();
  try {
    fn();
  } catch (error) {
    if (!(error instanceof BatonError)) {
      throw new Error(`${what}(${safeShow(input)}) threw a non-BatonError: ${String(error)}`, { cause: error });
    }
  }
  const took = performance.now() - started;
  if (took > CASE_BOUND_MS) throw new Error(`${what}(${safeShow(input)}) took ${took.toFixed(0)}ms (bound ${CASE_BOUND_MS}ms)`);
}

async function onlyBatonErrorsAsync(what: string, input: unknown, fn: () => Promise<unknown>): Promise<void> {
  const started = performance.now();
  try {
    await fn();
  } catch (error) {
    if (!(error instanceof BatonError)) {
      throw new Error(`${what}(${safeShow(input)}) threw a non-BatonError: ${String(error)}`, { cause: error });
    }
  }
  const took = performance.now() - started;
  if (took > CASE_BOUND_MS) throw new Error(`${what}(${safeShow(input)}) took ${took.toFixed(0)}ms (bound ${CASE_BOUND_MS}ms)`);
}

function safeShow(value: unknown): string {
  try {
    return fc.stringify(value).slice(0, 300);
  } catch {
    return '(unprintable)';
  }
}

// --- generators

const unit = fc.constantFrom('ms', 's', 'm', 'h', 'd', 'S', 'us', '', ' ', 'sec', 'min');
const number = fc.oneof(fc.nat({ max: 100_000 }).map(String), fc.double({ noNaN: false }).map(String), fc.constantFrom('1e309', '0.5', '.5', '5.', '-1', '00', '9'.repeat(400)));
const durationText = fc.oneof(
  fc.array(fc.tuple(number, unit).map(([n, u]) => `${n}${u}`), { minLength: 1, maxLength: 6 }).map((parts) => parts.join('')),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
);
const duration = fc.oneof(durationText, fc.double(), fc.integer(), fc.constantFrom(Infinity, -Infinity, NaN, -0, 2 ** 60), fc.anything());

const cronField = fc.oneof(
  fc.constantFrom('*', '*/5', '*/0', '1-5', '5-1', '0', '59', '60', '99', 'L', 'W', '15W', 'LW', '5#2', '?', 'MON', 'mon-fri', 'JAN', '1,2,3', ',', '-', '/', '*/', '1-', '2/3', '31', '30', 'FEB'),
  fc.string({ maxLength: 6 }),
  fc.nat({ max: 1000 }).map(String),
);
const cronText = fc.oneof(
  fc.array(cronField, { minLength: 1, maxLength: 8 }).map((f) => f.join(' ')),
  fc.constantFrom('0 0 30 2 *', '0 0 31 4 *', '* * * * * *', '0 0 29 2 1', '@yearly', '@hourly', '@reboot', ''),
  fc.string({ maxLength: 60 }),
);
const timezone = fc.oneof(fc.constantFrom('UTC', 'Europe/Paris', 'America/New_York', 'Etc/GMT+12', 'Mars/Olympus', '+02:00', ''), fc.string({ maxLength: 30 }), fc.anything());
const instant = fc.oneof(
  fc.date({ noInvalidDate: false }),
  fc.date({ min: new Date(-8.64e15), max: new Date(8.64e15), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom('2026-05-01T09:00:00Z', '2026-05-01T09:00:00+02:00', '2026-13-01T00:00:00Z', '2026-02-30T00:00:00Z', '2026-05-01T09:00:00'),
  fc.string({ maxLength: 40 }),
);
const scheduleOptions = fc.oneof(
  fc.record({ every: duration, cron: cronText, timezone, at: instant }, { requiredKeys: [] }),
  fc.record({ cron: cronText, timezone }, { requiredKeys: ['cron'] }),
  fc.record({ every: duration }, { requiredKeys: ['every'] }),
);

const fakeStore = (cluster: string): Store => ({ kind: 'memory', cluster, features: { crashDetection: false, watch: 'poll' } }) as unknown as Store;

const host = fc.oneof(
  fc.constantFrom('127.0.0.1', 'localhost', '[::1]', '[::1', '::1', 'db.example.com', '', '..', 'a..b', '[zz]', '1.2.3.4.5', 'h_st', 'xn--d1acpjx3f.xn--p1ai'),
  fc.domain(),
  fc.string({ maxLength: 20 }),
);
const port = fc.oneof(fc.constantFrom('', ':0', ':65535', ':65536', ':-1', ':99999999999', ':abc', ':'), fc.nat({ max: 70_000 }).map((p) => `:${p}`));
const userinfo = fc.oneof(fc.constant(''), fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 })).map(([u, p]) => `${u}:${p}@`), fc.constantFrom('%zz@', 'user@', ':pw@', 'a:%E0%A4%A@'));
const pathPart = fc.oneof(fc.constantFrom('', '/', '/0', '/15', '/16', '/99999', '/test', '/a/b/c', '/zookeeper', '/../x', '/%00', '//'), fc.string({ maxLength: 20 }).map((s) => `/${s}`));
const optionName = fc.constantFrom(
  'sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'schema', 'poolSize', 'connectTimeoutMs', 'statementTimeoutMs', 'applicationName',
  'ssl', 'tls', 'tlsCa', 'tlsCert', 'tlsKey', 'tlsServername', 'secure', 'timeoutMs', 'prefix', 'sessionTimeoutMs', 'requestTimeoutMs',
  'reconnectDelayMs', 'crashCheckMs', 'pollMs', 'keyPrefix', 'db', 'charset', 'table', 'unknown', '',
);
// File options get paths that exist (a directory, this file) or do not; never a device file.
const optionValue = fc.oneof(
  fc.constantFrom('', 'disable', 'require', 'verify-ca', 'verify-full', 'true', 'false', '0', '1', '-1', '100', '1e3', '99999999999', '.', '/nonexistent/ca.pem', 'baton'),
  fc.string({ maxLength: 12 }).map(encodeURIComponent),
);
const query = fc.oneof(
  fc.constant(''),
  fc.array(fc.tuple(optionName, optionValue).map(([k, v]) => `${k}=${v}`), { minLength: 1, maxLength: 4 }).map((kv) => `?${kv.join('&')}`),
  fc.string({ maxLength: 20 }).map((s) => `?${s}`),
);
const fragment = fc.constantFrom('', '', '', '#x');
const storeUrl = (schemes: readonly string[]) =>
  fc.oneof(
    fc
      .tuple(fc.constantFrom(...schemes, 'http', 'sqlite', 'memory', ''), fc.constantFrom('://', ':', ':///'), userinfo, fc.array(fc.tuple(host, port).map(([h, p]) => `${h}${p}`), { minLength: 1, maxLength: 3 }), pathPart, query, fragment)
      .map(([s, sep, u, hosts, p, q, f]) => `${s}${sep}${u}${hosts.join(',')}${p}${q}${f}`),
    fc.webUrl({ withQueryParameters: true, withFragments: true }).map((url) => url.replace(/^https?/, schemes[0] as string)),
    fc.string({ maxLength: 80 }),
    fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => `${schemes[0] as string}://${s}`),
  );

// --- properties

describe('fuzz: parsers of untrusted input only throw BatonErrors', () => {
  it(`parseDuration (${RUNS} cases)`, () => {
    fc.assert(fc.property(duration, fc.string({ maxLength: 10 }), (value, field) => onlyBatonErrors('parseDuration', value, () => parseDuration(value, field))), params);
  }, TEST_TIMEOUT_MS);

  it(`parseSchedule: every, cron, timezone, at (${RUNS} cases)`, () => {
    fc.assert(
      // defineTask checks that options is an object before it calls parseSchedule: objects only here.
      fc.property(fc.oneof(scheduleOptions, fc.dictionary(fc.constantFrom('every', 'cron', 'timezone', 'at', 'x'), fc.anything())), (options) =>
        onlyBatonErrors('parseSchedule', options, () => parseSchedule(options as never, 'task "fuzz"')),
      ),
      params,
    );
  }, TEST_TIMEOUT_MS);

  it(`defineTask (${RUNS} cases)`, () => {
    const selector = fc.oneof(fc.dictionary(fc.constantFrom('node', 'region', 'role', ''), fc.oneof(fc.string({ maxLength: 6 }), fc.anything())), fc.anything());
    const modeOptions = fc.record(
      {
        mode: fc.oneof(fc.constantFrom('singleton', 'preferred', 'mutex', 'round-robin', 'broadcast', 'sharded', 'dispatch', 'leader', ''), fc.anything()),
        prefer: fc.oneof(selector, fc.array(selector, { maxLength: 3 })),
        failbackAfter: duration,
        shards: fc.oneof(fc.integer(), fc.double(), fc.array(fc.oneof(fc.string({ maxLength: 6 }), fc.anything()), { maxLength: 4 }), fc.anything()),
        queue: fc.oneof(
          fc.record({ visibilityTimeout: duration, maxAttempts: fc.oneof(fc.integer(), fc.anything()), backoff: fc.oneof(duration, fc.record({ initial: duration, max: duration }), fc.anything()), workers: fc.oneof(fc.integer(), fc.anything()) }, { requiredKeys: [] }),
          fc.anything(),
        ),
      },
      { requiredKeys: [] },
    );
    const options = fc.oneof(
      scheduleOptions.chain((s) => fc.record({ history: fc.oneof(fc.integer(), fc.double(), fc.anything()) }, { requiredKeys: [] }).map((h) => ({ ...s, ...h }))),
      fc.tuple(scheduleOptions, modeOptions).map(([s, m]) => ({ ...s, ...m })),
      fc.dictionary(fc.string({ maxLength: 8 }), fc.anything(), { maxKeys: 4 }),
      fc.anything(),
    );
    const name = fc.oneof(fc.string({ maxLength: 140 }), fc.stringMatching(/^[A-Za-z0-9][\w.:-]{0,130}$/), fc.anything());
    const handler = fc.constantFrom<unknown>(() => undefined, async () => undefined, 'handler', undefined, null, { produce: () => undefined, consume: () => undefined }, { produce: 1 });
    fc.assert(fc.property(name, options, handler, (n, o, h) => onlyBatonErrors('defineTask', [n, o], () => defineTask(n, o, h))), params);
  }, TEST_TIMEOUT_MS);

  it(`resolveSessionTiming (${RUNS} cases)`, () => {
    // createCluster checks that its options are an object first: objects with any field values here.
    const timing = fc.oneof(
      fc.record({ ttl: duration, renewEvery: duration, safetyMargin: duration }, { requiredKeys: [] }),
      fc.dictionary(fc.constantFrom('ttl', 'renewEvery', 'safetyMargin'), fc.anything()),
    );
    fc.assert(fc.property(timing, (options) => onlyBatonErrors('resolveSessionTiming', options, () => resolveSessionTiming(options as never))), params);
  }, TEST_TIMEOUT_MS);

  it(`createCluster option validation, with a store object so nothing is opened (${RUNS} cases)`, async () => {
    const options = fc.record(
      {
        name: fc.oneof(fc.string({ maxLength: 70 }), fc.stringMatching(/^[A-Za-z0-9][\w.-]{0,63}$/), fc.anything()),
        node: fc.oneof(fc.record({ id: fc.anything(), labels: fc.anything() }, { requiredKeys: [] }), fc.anything()),
        ttl: duration,
        renewEvery: duration,
        safetyMargin: duration,
        scanEvery: duration,
        claimDelay: duration,
        rebalanceAfter: duration,
        unknownOption: fc.anything(),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(options, async (o) => {
        const name = typeof o.name === 'string' ? o.name : 'default';
        await onlyBatonErrorsAsync('createCluster', o, async () => {
          const cluster = await createCluster({ ...(o as object), store: fakeStore(name), logger: silentLogger } as never);
          expect(cluster.state).toBe('new');
        });
      }),
      params,
    );
  }, TEST_TIMEOUT_MS);

  it(`parseStoreUrl (${RUNS} cases)`, () => {
    const url = fc.oneof(storeUrl(['sqlite', 'memory', 'postgres', 'zk']), fc.anything());
    fc.assert(fc.property(url, (u) => onlyBatonErrors('parseStoreUrl', u, () => parseStoreUrl(u))), params);
  }, TEST_TIMEOUT_MS);

  const serverParsers: [string, readonly string[], (url: string) => unknown][] = [
    ['parsePostgresUrl', ['postgres', 'postgresql'], parsePostgresUrl],
    ['parseMysqlUrl', ['mysql', 'mariadb'], parseMysqlUrl],
    ['parseRedisUrl', ['redis', 'rediss', 'redis+sentinel'], parseRedisUrl],
    ['parseEtcdUrl', ['etcd', 'etcds'], parseEtcdUrl],
    ['parseZookeeperUrl', ['zk'], parseZookeeperUrl],
  ];
  for (const [name, schemes, parse] of serverParsers) {
    it(`${name} (${RUNS} cases)`, () => {
      fc.assert(fc.property(storeUrl(schemes), (u) => onlyBatonErrors(name, u, () => parse(u))), params);
    }, TEST_TIMEOUT_MS);
  }
});
