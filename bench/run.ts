/**
 * `npm run bench` (quick, a few minutes) or `npm run bench -- --full`.
 * Options: --only failover,ticks,ticksQuiet,load,locks,spread,peers,peer-locks,peer-advisory,peer-get-lock,zombie,ha-replica,ha,scale   --stores sqlite,postgres,…
 *          (scale runs only when named: `--only scale`; its grid takes up to an hour per store)
 *          --scale-nodes 3,30,100 --scale-tasks 100,1000,10000 (the scale grid) --scale-cap-seconds N (settle cap, 120)
 *          --trials N (kill/term trials) --stop-trials N --tick-seconds N --kill-every-seconds N
 *          --quiet-seconds N (ticksQuiet: seconds per store, default 125 full, 10 quick)
 *          --window-ms N (load and lock windows) --out DIR (default bench/) --no-background
 *          --zombie-repetitions N (woken-zombie trials per store and variant; default 100 full, 5 quick)
 *          --rewrite-report (rewrite DIR/RESULTS.md from DIR/results.json, e.g. after editing analysis.md)
 * Every child process is killed at the end, even on error; every loop is bounded; traffic goes to
 * 127.0.0.1 only; what the bench wrote to the servers is removed at the end.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { killAllChildren } from './children.js';
import { batonFleet, runFailover, type FailoverKind, type FailoverResult } from './failover.js';
import { measureLoad, type LoadPoint } from './load.js';
import { measureScale } from './scale.js';
import { clusterLockOps, storeLockOps, type OpsPerSec } from './locks.js';
import { describeMachine } from './machine.js';
import { advisoryFleet } from './peers/pg-advisory.js';
import { getLockLeaderFleet } from './peers/mysql-get-lock-leader.js';
import { electionFleet } from './peers/etcd-election.js';
import { zkElectionFleet } from './peers/zk-election.js';
import { runBullmqTicks } from './peers/bullmq.js';
import { cleanupPgBoss, startPgBossBackground } from './peers/pgboss.js';
import { redisPeerLocks } from './peers/redis-locks.js';
import { pgAdvisoryLockOps } from './peers/pg-advisory-locks.js';
import { mysqlGetLockOps } from './peers/mysql-get-lock.js';
import { writeReport, type Results, type Settings } from './report.js';
import { measureSpread } from './spread.js';
import { cleanupStores, parseStores, storeSpec, type StoreName } from './stores.js';
import { runTicks } from './ticks.js';
import { externalFor, runZombieTrials, ZOMBIE_VARIANTS, zombieProgress, type ZombieResult, type ZombieVariant } from './zombie.js';
import { HA_POSTGRES_URL, HA_REDIS_URL, haScript, haSummary, killMasterForSentinels, killPrimaryAndPromote, runHaFailover, type HaOptions } from '../test/chaos/ha.js';
import { runHaFaults, type HaStore } from '../test/helpers/ha-fleet.js';
import { errorText, progress, sleep } from './util.js';

/**
 * `peer-locks`: only the lock peers of `peers` (redlock and SET NX PX on Redis, pg_try_advisory_lock on
 * PostgreSQL, GET_LOCK on MySQL), to re-run them next to `locks`. `locks` runs each store's same-store peer right after it
 * too, so one run has both sides of every ratio. `peer-advisory`: only the PostgreSQL advisory-lock
 * leader loop, to re-run it next to `failover`; `peer-get-lock`: only the MySQL `GET_LOCK` leader loop, likewise
 * (into `peers.mysql-get-lock.{kill,term}`). `peer-zk`: only the ZooKeeper ephemeral-node election
 * (bench/peers/zk-election.ts), to re-run it next to `failover` on ZooKeeper. `ha-replica`: one failover of a replicated PostgreSQL
 * (primary killed, replica promoted) and Redis (master killed, Sentinel failover) from
 * scripts/ha-replicas.sh under the chaos workload (test/chaos/ha.ts; needs `npm run build`), into
 * `ha.<store>.<fault>`. `ha`: the store's own failover (issue 22) on the
 * multi-member etcd and ZooKeeper clusters of scripts/ha-clusters.sh (leader kill, member kill, 10 s
 * quorum loss; test/helpers/ha-fleet.ts), for the stores among `--stores` that are etcd or zookeeper,
 * into `ha.<store>` ({ violations, runs, faults.<fault> }).
 */
const SECTIONS = ['failover', 'ticks', 'ticksQuiet', 'load', 'locks', 'spread', 'peers', 'peer-locks', 'peer-advisory', 'peer-get-lock', 'peer-zk', 'zombie', 'ha-replica', 'ha', 'scale'] as const;
/**
 * `zombie` (bench/zombie.ts) runs on the stores issue 18 names that are in `--stores`: a woken owner
 * against an external fenced table, with `ctx.assertOwner()`, with the successor's onAcquire fence, and
 * (a tenth of the repetitions) with neither, the control that must show stale writes.
 */
const ZOMBIE_STORES: readonly StoreName[] = ['sqlite', 'postgres', 'redis'];
type Section = (typeof SECTIONS)[number];
/** Sections a run without --only runs: scale's grid is too long for it. */
const DEFAULT_SECTIONS = SECTIONS.filter((s) => s !== 'scale');

interface Args {
  full: boolean;
  only: Set<Section>;
  stores: StoreName[];
  trials?: number;
  stopTrials?: number;
  tickSeconds?: number;
  killEverySeconds?: number;
  quietSeconds?: number;
  windowMs?: number;
  zombieRepetitions?: number;
  scaleNodes: number[];
  scaleTasks: number[];
  scaleCapS: number;
  out: string;
  background: boolean;
  rewriteReport: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { full: false, only: new Set(DEFAULT_SECTIONS), stores: parseStores(undefined), scaleNodes: [3, 30, 100], scaleTasks: [100, 1000, 10_000], scaleCapS: 120, out: fileURLToPath(new URL('.', import.meta.url)), background: true, rewriteReport: false };
  const num = (i: number, flag: string): number => {
    const v = Number(argv[i]);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`bench: ${flag} needs a positive number`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--full': args.full = true; break;
      case 'quick': case '--quick': args.full = false; break;
      case '--only': {
        const list = (argv[++i] ?? '').split(',').filter(Boolean);
        for (const s of list) if (!SECTIONS.includes(s as Section)) throw new Error(`bench: unknown section "${s}" (known: ${SECTIONS.join(', ')})`);
        args.only = new Set(list as Section[]);
        break;
      }
      case '--stores': args.stores = parseStores(argv[++i]); break;
      case '--trials': args.trials = num(++i, a); break;
      case '--stop-trials': args.stopTrials = num(++i, a); break;
      case '--tick-seconds': args.tickSeconds = num(++i, a); break;
      case '--kill-every-seconds': args.killEverySeconds = num(++i, a); break;
      case '--quiet-seconds': args.quietSeconds = num(++i, a); break;
      case '--window-ms': args.windowMs = num(++i, a); break;
      case '--zombie-repetitions': args.zombieRepetitions = num(++i, a); break;
      case '--scale-nodes': case '--scale-tasks': {
        const flag = a;
        const list = (argv[++i] ?? '').split(',').filter(Boolean).map((v) => Number(v));
        if (list.length === 0 || list.some((v) => !Number.isInteger(v) || v < (flag === '--scale-nodes' ? 2 : 1))) throw new Error(`bench: ${flag} needs a list of integers (nodes ≥ 2)`);
        if (flag === '--scale-nodes') args.scaleNodes = list;
        else args.scaleTasks = list;
        break;
      }
      case '--scale-cap-seconds': args.scaleCapS = num(++i, a); break;
      case '--out': args.out = argv[++i] ?? args.out; break;
      case '--no-background': args.background = false; break;
      case '--rewrite-report': args.rewriteReport = true; break;
      default: throw new Error(`bench: unknown argument ${JSON.stringify(a)} (see the head of bench/run.ts)`);
    }
  }
  return args;
}


function settingsFor(args: Args): Settings {
  const full = args.full;
  const trials = args.trials ?? (full ? 20 : 2);
  const stopTrials = args.stopTrials ?? (full ? 20 : 1);
  const tickDurationS = args.tickSeconds ?? (full ? 330 : 10);
  return {
    mode: full ? 'full' : 'quick',
    ttlMs: 5000,
    trials: { kill: trials, term: trials, stop: stopTrials },
    tickDurationS,
    killEveryS: args.killEverySeconds ?? (full ? 60 : Math.max(1, Math.floor(tickDurationS / 2))),
    quietTickDurationS: args.quietSeconds ?? (full ? 125 : 10),
    loadWindowMs: args.windowMs ?? (full ? 20_000 : 3000),
    lockWindowMs: args.windowMs ?? (full ? 5000 : 1000),
    electionTrials: { kill: trials, term: trials, stop: stopTrials },
    electionDefaultTrials: full ? { kill: 20, term: 5 } : { kill: 1, term: 1 },
    advisoryTrials: { kill: trials, term: trials, stop: 1 },
    scaleWindowMs: args.windowMs ?? (full ? 30_000 : 20_000),
    scaleCapMs: args.scaleCapS * 1000,
  };
}

const pick = (r: FailoverResult | undefined) => (r ? { p50: r.p50, p99: r.p99, n: r.n, timeouts: r.timeouts, ...(r.zombieRuns !== undefined ? { zombieRuns: r.zombieRuns, selfFenced: r.selfFenced } : {}) } : undefined);

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.rewriteReport) {
    // Regenerates RESULTS.md (e.g. after editing bench/analysis.md) from results.json, measuring nothing.
    const saved = JSON.parse(readFileSync(join(args.out, 'results.json'), 'utf8')) as Results;
    saved.run ??= /run `([^`]+)`/.exec(readFileSync(join(args.out, 'RESULTS.md'), 'utf8'))?.[1] ?? '?';
    const { markdownPath } = writeReport(saved, args.out);
    process.stdout.write(`rewrote ${markdownPath}\n`);
    return;
  }
  // Now, not after an hour of measuring: an --out that cannot be created fails before anything runs.
  mkdirSync(args.out, { recursive: true });
  const settings = settingsFor(args);
  const run = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const startedAt = Date.now();
  const has = (s: Section) => args.only.has(s);
  const stores = args.stores;
  progress(`baton bench (${settings.mode}), run ${run}, stores ${stores.join(', ')}, sections ${[...args.only].join(', ')}`);
  const results: Results = {
    mode: settings.mode,
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    run,
    startedAt: new Date(startedAt).toISOString(),
    durationS: 0,
    machine: await describeMachine(),
    loadAvgAtEnd: [],
    settings,
    stores: Object.fromEntries(stores.map((s) => [s, storeSpec(s).crashMode])),
    failover: {},
    ticks: {},
    ...(has('ticksQuiet') ? { ticksQuiet: {} } : {}),
    load: {},
    locks: {},
    spread: {},
    peers: {},
    zombie: {},
    errors: [],
    ...(has('scale') ? { scale: {} } : {}),
  };
  const attempt = async (section: string, store: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (error) {
      progress(`${section} ${store}: FAILED ${errorText(error)}`);
      results.errors.push({ section, store, error: errorText(error).slice(0, 500) });
    }
  };
  const pgUrl = storeSpec('postgres').url.replace(/\?.*$/, '');
  const mysqlUrl = storeSpec('mysql').url.replace(/\?.*$/, '');
  const background: { name: string; finish: () => Promise<void> }[] = [];
  try {
    // Background peers whose time scale is a minute: pg-boss cron and etcd3's default 60 s election TTL.
    if (has('peers') && args.background) {
      progress('peers: starting pg-boss (cron, minute granularity) and etcd3 Election (default TTL) in the background');
      const boss = startPgBossBackground(pgUrl, run);
      background.push({ name: 'pg-boss', finish: async () => void (results.peers['pg-boss-schedule'] = { ...(await boss.finish()) }) });
      await boss.ready;
      const election = runFailover(
        { spawn: electionFleet(`bench-election-${run}-default`, undefined), nodes: 2, label: 'etcd3-election-default-ttl' },
        { kinds: ['term', 'kill'], trials: { ...settings.electionDefaultTrials, stop: 0 }, timeoutMs: 90_000, stopObserveMs: 0 },
      );
      background.push({
        name: 'etcd3 default TTL',
        finish: async () => {
          const r = await election;
          results.peers['etcd3-election-default-ttl'] = { ttlS: 60, kill: pick(r.kill), term: pick(r.term) };
        },
      });
    }

    if (background.length > 0) await sleep(5000); // let the background processes finish starting (CPU)
    if (has('failover')) {
      for (const name of stores) {
        const spec = storeSpec(name);
        await attempt('failover', name, async () => {
          const r = await runFailover(
            { spawn: batonFleet(spec.url, `bench-${run}-fo-${name}`, '250ms'), nodes: 3, task: 'watched', label: name },
            { kinds: ['kill', 'term', 'stop'], trials: settings.trials, timeoutMs: settings.ttlMs * 3 + 5000, stopObserveMs: 1500 },
          );
          results.failover[name] = { kill: pick(r.kill), term: pick(r.term), stop: pick(r.stop) };
        });
      }
    }
    if (has('ticks')) {
      for (const name of stores) {
        await attempt('ticks', name, async () => {
          const r = await runTicks(name, storeSpec(name).url, `bench-${run}-ticks-${name}`, {
            durationMs: settings.tickDurationS * 1000,
            killEveryMs: settings.killEveryS * 1000,
            intervalMs: 1000,
          });
          progress(`ticks ${name}: late p50 ${r.lateP50}ms p99 ${r.lateP99}ms, dup ${r.dup}, missed ${r.missed} (${r.ticks} ticks, ${r.kills} kills)`);
          results.ticks[name] = r;
        });
      }
    }
    if (has('ticksQuiet')) {
      // Every store at once (side by side, the same minutes of the same machine), no kills: the
      // scheduler's own lateness, which the failovers of `ticks` hide in its p99.
      const durationMs = (settings.quietTickDurationS ?? 10) * 1000;
      await Promise.all(
        stores.map((name) =>
          attempt('ticksQuiet', name, async () => {
            const r = await runTicks(`${name}-quiet`, storeSpec(name).url, `bench-${run}-quiet-${name}`, { durationMs, killEveryMs: Number.POSITIVE_INFINITY, intervalMs: 1000 });
            progress(`ticksQuiet ${name}: late p50 ${r.lateP50}ms p99 ${r.lateP99}ms max ${r.lateMax}ms, dup ${r.dup}, missed ${r.missed} (${r.ticks} ticks)`);
            (results.ticksQuiet ??= {})[name] = { lateP50: r.lateP50, lateP99: r.lateP99, max: r.lateMax, dup: r.dup, missed: r.missed, ticks: r.ticks, durationS: r.durationS, recordedMissed: r.recordedMissed };
          }),
        ),
      );
    }
    if (has('load')) {
      for (const name of stores) {
        await attempt('load', name, async () => {
          const points: Record<string, LoadPoint> = {};
          for (const n of [1, 100, 1000]) points[`t${n}`] = await measureLoad(storeSpec(name).url, `bench-${run}-load-${name}-${n}`, n, settings.loadWindowMs);
          const field = (f: 'writesPerSec' | 'roundTripsPerSec') => Object.fromEntries(Object.entries(points).map(([k, p]) => [k, p[f]]));
          results.load[name] = {
            writesPerSec: field('writesPerSec'),
            roundTripsPerSec: field('roundTripsPerSec'),
            byMethod: Object.fromEntries(Object.entries(points).map(([k, p]) => [k, p.byMethod])),
            settleMs: Object.fromEntries(Object.entries(points).map(([k, p]) => [k, p.settleMs])),
            ...(points.t1?.storeWork
              ? { storeWork: { unit: points.t1.storeWork.unit, perSec: Object.fromEntries(Object.entries(points).map(([k, p]) => [k, p.storeWork?.perSec ?? null])) } }
              : {}),
          };
        });
      }
    }
    if (has('locks')) {
      for (const name of stores) {
        await attempt('locks', name, async () => {
          const ops: OpsPerSec = await storeLockOps(storeSpec(name).url, `bench-${run}-locks-${name}`, settings.lockWindowMs);
          progress(`locks ${name}: ${ops.seq} ops/s sequential, ${ops.c10} ops/s 10-way`);
          results.locks[name] = { opsPerSec: ops };
          const viaCluster = await clusterLockOps(storeSpec(name).url, `bench-${run}-clocks-${name}`, settings.lockWindowMs).catch((error: unknown) => {
            progress(`locks ${name}: cluster.lock() failed: ${errorText(error)}`);
            return null;
          });
          if (viaCluster) {
            progress(`locks ${name} via cluster.lock(): ${viaCluster.seq} ops/s sequential, ${viaCluster.c10} ops/s 10-way`);
            results.locks[name] = { opsPerSec: ops, clusterLockOpsPerSec: viaCluster };
          }
        });
      }
    }
    if (has('spread')) {
      const spreadStores = settings.mode === 'full' ? stores : stores.filter((s) => s === 'sqlite').slice(0, 1);
      for (const name of spreadStores.length > 0 ? spreadStores : stores.slice(0, 1)) {
        await attempt('spread', name, async () => {
          results.spread[name] = await measureSpread(storeSpec(name).url, `bench-${run}-spread-${name}`, 300, 3, settings.ttlMs);
        });
      }
    }
    if (has('ha-replica')) {
      const scenarios: [string, string, string, string, HaOptions['fault']][] = [
        ['postgres', 'promote', 'pg-reset', HA_POSTGRES_URL, killPrimaryAndPromote],
        ['redis', 'sentinel-failover', 'redis-reset', HA_REDIS_URL, killMasterForSentinels],
      ];
      for (const [store, fault, reset, url, kill] of scenarios) {
        await attempt('ha-replica', store, async () => {
          haScript(reset);
          const r = await runHaFailover({ url, cluster: `bench-${run}-ha-${store}`, fault: kill });
          progress(haSummary(`${store} ${fault}`, r));
          results.ha = {
            ...results.ha,
            [store]: { ...results.ha?.[store], [fault]: { gapMs: r.gapMs, resumeMs: r.resumeMs, missed: r.missed, sessionsLost: r.sessionsLost, violations: r.check.violations.length + r.check.undecidable.length } },
          };
          haScript(reset); // a healthy pair for whoever comes next
        });
      }
    }
    if (has('scale')) {
      for (const name of stores) {
        await attempt('scale', name, async () => {
          const points: NonNullable<Results['scale']>[string] = {};
          (results.scale ??= {})[name] = points;
          for (const nodes of args.scaleNodes) {
            for (const tasks of args.scaleTasks) {
              points[`n${nodes}t${tasks}`] = await measureScale(name, storeSpec(name).url, `bench-${run}-scale-${name}-n${nodes}t${tasks}`, nodes, tasks, {
                windowMs: settings.scaleWindowMs ?? 20_000,
                capMs: settings.scaleCapMs ?? 120_000,
                failoverCapMs: 60_000,
              });
            }
          }
        });
      }
    }
    if (has('peers') || has('peer-locks')) {
      await attempt('peers', 'pg advisory locks', async () => {
        const ops = await pgAdvisoryLockOps(pgUrl, settings.lockWindowMs);
        progress(`peers: pg_try_advisory_lock + unlock ${ops.seq}/${ops.c10} ops/s (seq/c10)`);
        results.peers['pg-advisory-lock'] = { ...results.peers['pg-advisory-lock'], opsPerSec: ops };
      });
      await attempt('peers', 'mysql named locks', async () => {
        const ops = await mysqlGetLockOps(storeSpec('mysql').url, settings.lockWindowMs, run);
        progress(`peers: GET_LOCK + RELEASE_LOCK ${ops.seq}/${ops.c10} ops/s (seq/c10)`);
        results.peers['mysql-get-lock'] = { ...results.peers['mysql-get-lock'], opsPerSec: ops };
      });
      await attempt('peers', 'redis locks', async () => {
        const r = await redisPeerLocks(settings.lockWindowMs, run);
        progress(`peers: redlock ${r.redlock.seq}/${r.redlock.c10} ops/s, SET NX PX ${r.setnx.seq}/${r.setnx.c10} ops/s (seq/c10)`);
        results.peers.redlock = { opsPerSec: r.redlock };
        results.peers['redis-setnx-lua'] = { opsPerSec: r.setnx };
      });
    }
    if (has('peers')) {
      await attempt('peers', 'etcd3 election ttl 5', async () => {
        const r = await runFailover(
          { spawn: electionFleet(`bench-election-${run}-ttl5`, 5), nodes: 3, label: 'etcd3-election-ttl5' },
          { kinds: ['kill', 'term', 'stop'], trials: settings.electionTrials, timeoutMs: 20_000, stopObserveMs: 1500 },
        );
        results.peers['etcd3-election-ttl5'] = { ttlS: 5, kill: pick(r.kill), term: pick(r.term), stop: pick(r.stop) };
      });
    }
    if (has('peers') || has('peer-advisory')) {
      await attempt('peers', 'pg advisory lock', async () => {
        const r = await runFailover(
          { spawn: advisoryFleet(pgUrl, 0x0ba70000 + Math.floor(Math.random() * 0xffff)), nodes: 3, label: 'pg-advisory-lock' },
          { kinds: ['kill', 'term', 'stop'], trials: settings.advisoryTrials, timeoutMs: settings.mode === 'full' ? 15_000 : 8000, stopObserveMs: 500 },
        );
        results.peers['pg-advisory-lock'] = { kill: pick(r.kill), term: pick(r.term), stop: pick(r.stop) };
      });
    }
    if ((has('peers') || has('peer-get-lock')) && stores.includes('mysql')) {
      await attempt('peers', 'mysql GET_LOCK leader loop', async () => {
        const r = await runFailover(
          { spawn: getLockLeaderFleet(mysqlUrl, `bench-get-lock-${run}`), nodes: 3, label: 'mysql-get-lock' },
          { kinds: ['kill', 'term'], trials: settings.advisoryTrials, timeoutMs: settings.mode === 'full' ? 15_000 : 8000, stopObserveMs: 500 },
        );
        // Other keys of this peer (its lock ops) come from another section: kept as they are.
        results.peers['mysql-get-lock'] = { ...results.peers['mysql-get-lock'], kill: pick(r.kill), term: pick(r.term) };
      });
    }
    if (has('peers') || has('peer-zk')) {
      await attempt('peers', 'zk ephemeral election', async () => {
        // Session timeout = the TTL of baton's fleets: a killed leader's znode goes when its session expires.
        const sessionTimeoutMs = settings.ttlMs;
        const r = await runFailover(
          { spawn: zkElectionFleet('127.0.0.1:2181', `/baton-bench/zk-election-${run}`, sessionTimeoutMs), nodes: 3, label: 'zk-ephemeral-election' },
          { kinds: ['kill', 'term'], trials: settings.advisoryTrials, timeoutMs: sessionTimeoutMs * 3 + 5000, stopObserveMs: 0 },
        );
        results.peers['zk-ephemeral-election'] = { sessionTimeoutS: sessionTimeoutMs / 1000, kill: pick(r.kill), term: pick(r.term) };
      });
    }
    if (has('peers')) {
      await attempt('peers', 'bullmq', async () => {
        const r = await runBullmqTicks(run, settings.tickDurationS * 1000, settings.killEveryS * 1000);
        progress(`peers: bullmq late p50 ${r.lateP50}ms p99 ${r.lateP99}ms, dup ${r.dup}, missed ${r.missed}`);
        results.peers['bullmq-job-scheduler'] = { ...r };
      });
    }
    if (has('zombie')) {
      const repetitions = args.zombieRepetitions ?? (args.full ? 100 : 5);
      for (const name of stores.filter((s) => ZOMBIE_STORES.includes(s))) {
        await attempt('zombie', name, async () => {
          const store = storeSpec(name).url;
          const variants: Partial<Record<ZombieVariant, ZombieResult>> = {};
          for (const variant of ZOMBIE_VARIANTS) {
            const label = `${name} ${variant}`;
            const cluster = `bench-${run}-zombie-${name}-${variant}`;
            const { external, cleanup } = externalFor(store, pgUrl, cluster);
            try {
              const n = variant === 'none' ? Math.max(1, Math.round(repetitions / 10)) : repetitions;
              variants[variant] = await runZombieTrials({ store, cluster, external, variant, repetitions: n, onRepetition: zombieProgress(label) });
              progress(`zombie ${label}: ${JSON.stringify(variants[variant])}`);
            } finally {
              await cleanup();
            }
          }
          const fenced = [variants.assert, variants.hook];
          (results.zombie ??= {})[name] = {
            repetitions,
            staleAccepted: fenced.reduce((sum, v) => sum + (v?.staleAccepted ?? 0), 0),
            variants,
          };
        });
      }
    }
    if (has('ha')) {
      // The store's own failover: multi-member clusters of scripts/ha-clusters.sh, not the test servers.
      for (const name of stores.filter((s): s is HaStore => s === 'etcd' || s === 'zookeeper')) {
        await attempt('ha', name, async () => {
          const r = await runHaFaults({ store: name, log: progress });
          const faults = Object.fromEntries(
            r.figures.map((f) => [f.fault, { gapMs: f.gapMs, missed: f.missed, sessionsLost: f.sessionsLost, ownerDrops: f.ownerDrops, ...(f.resumeMs !== undefined ? { resumeMs: Number.isFinite(f.resumeMs) ? f.resumeMs : null } : {}), detail: f.detail }]),
          );
          for (const f of r.figures) progress(`ha ${name} ${f.fault}: gap ${f.gapMs} ms, missed ${f.missed}, sessions lost ${f.sessionsLost}, owner drops ${f.ownerDrops}${f.resumeMs !== undefined ? `, resumed ${f.resumeMs} ms after the quorum` : ''}`);
          (results.ha ??= {})[name] = { violations: r.check.violations.length + r.check.undecidable.length, runs: r.runs, faults };
        });
      }
    }
    for (const b of background) await attempt('peers', b.name, b.finish);
  } finally {
    await killAllChildren();
    // The ZooKeeper peer writes under the bench's ZooKeeper root, removed with the ZooKeeper store's data.
    await cleanupStores(has('peers') || has('peer-zk') ? [...new Set<StoreName>([...stores, 'zookeeper'])] : stores);
    if (has('peers')) await cleanupPgBoss(pgUrl).catch((error: unknown) => progress(`cleanup pg-boss: ${errorText(error)}`));
  }
  results.durationS = Math.round((Date.now() - startedAt) / 1000);
  results.loadAvgAtEnd = loadavg().map((x) => Math.round(x * 100) / 100);
  const { markdownPath, jsonPath, summary } = writeReport(results, args.out);
  process.stdout.write(`${summary}\nwrote ${markdownPath} and ${jsonPath} (${results.durationS} s)\n`);
}

main().then(
  () => process.exit(0),
  async (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    await killAllChildren();
    process.exit(1);
  },
);
