/**
 * Relay throughput and end-to-end latency over 3 levels, A → B → C, on PostgreSQL databases and RabbitMQ
 * of this machine: `npx tsx bench/relay.ts [--json] [--rate N] [--seconds N] [--warmup N] [--keys N]
 * [--batch N] [--partitions N]` (defaults: 5,000/s, 10 s measured after 3 s of warm-up, 2 partitions per
 * node — one per core here).
 *
 * It builds the package (tsc) and runs the three relays from dist/ with plain Node, one process each, as
 * `baton relay` runs. An application at A emits `rate` changes per second (transactions of `rate / 100`
 * changes written with one `emitMany`, one every 10 ms, at most 4 at a time): first `warmup` seconds ramping up from a fifth of `rate`, then
 * `seconds` measured. Measured, over the changes emitted after the warm-up:
 * - changesPerSec: changes applied at C ÷ (last apply at C − first emit at A);
 * - p50Ms / p99Ms: per change, the time from its emit at A (wall clock, in the change's arguments) to the
 *   execution of its statement at C (`clock_timestamp()` in C's row); `warmup` gives them for the warm-up
 *   (connections opening, JIT, first plans), reported apart;
 * - lost / duplicated: changes emitted (warm-up included) but absent at B or C / present more than once;
 * - cpuMsPerChange: CPU time per change at C, by part (the three relays, the emitting application,
 *   PostgreSQL's processes, RabbitMQ's), from /proc over the measured part (Linux): what bounds throughput
 *   when everything shares this machine's cores — `cores × 1000 / total` changes/s at best.
 * Prints the summary as JSON with --json, and latency by second of the run on stderr. Creates databases
 * relay_bench_<random>_{a,b,c} and exchanges/queues `baton.relay.bench<random>…`, and removes them at the
 * end, also on error. With BATON_BENCH_PROFILE=DIR the relay processes write CPU profiles there. Every loop
 * is bounded; traffic stays on 127.0.0.1.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../src/core/logger.js';
import { defineTopology, type TopologyConfig } from '../src/relay/topology.js';
import { openRelayClient, startRelay } from '../src/relay/index.js';
import { deleteTopology } from '../src/relay/amqp-connection.js';

const AMQP_URL = process.env.BATON_BENCH_AMQP ?? 'amqp://guest:guest@127.0.0.1:5672';
const PG = 'postgres://postgres@127.0.0.1:5432';
const KEYS = { current: 'bench', keys: { bench: randomBytes(32).toString('hex') } };

interface Args {
  json: boolean;
  rate: number;
  seconds: number;
  warmup: number;
  keys: number;
  batch: number;
  partitions: number;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { json: false, rate: 5000, seconds: 10, warmup: 3, keys: 1000, batch: 500, partitions: 2 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`bench/relay: ${flag} needs a positive number`);
      return v;
    };
    if (flag === '--json') args.json = true;
    else if (flag === '--rate') args.rate = Math.min(50_000, num());
    else if (flag === '--seconds') args.seconds = Math.min(120, num());
    else if (flag === '--warmup') {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) throw new Error('bench/relay: --warmup needs a number of seconds ≥ 0');
      args.warmup = Math.min(60, v);
    }
    else if (flag === '--keys') args.keys = Math.min(100_000, Math.round(num()));
    else if (flag === '--batch') args.batch = Math.min(5000, Math.round(num()));
    else if (flag === '--partitions') args.partitions = Math.min(64, Math.round(num()));
    else throw new Error(`bench/relay: unknown option ${flag}`);
  }
  return args;
}

const STATEMENTS = {
  put: {
    params: { k: 'string', v: 'integer', t: 'number' },
    postgres: 'INSERT INTO ledger (k, v, emitted_ms) VALUES ($1, $2, $3)',
  },
} as const;

function topologyConfig(run: string, urls: Record<'a' | 'b' | 'c', string>, partitions: number): TopologyConfig {
  return {
    name: `bench${run}`,
    partitions,
    levels: [
      { name: 'A', nodes: [{ id: 'a1', database: urls.a }] },
      { name: 'B', nodes: [{ id: 'b1', database: urls.b }] },
      { name: 'C', nodes: [{ id: 'c1', database: urls.c }] },
    ],
    statements: STATEMENTS,
  };
}

async function pgAdmin<T>(fn: (client: import('pg').Client) => Promise<T>, database = 'postgres'): Promise<T> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: `${PG}/${database}` });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** CPU ms used so far (user + system) by processes whose command name is in `names`, or whose pid is in `pids`. */
function cpuMs(match: { names?: readonly string[]; pids?: readonly number[] }): number {
  const ticksPerSec = 100; // USER_HZ on Linux
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    if (!match.names?.includes(comm) && !match.pids?.includes(Number(entry))) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
  }
  return (ticks * 1000) / ticksPerSec;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  // The relays run the compiled package, as in production: build it from the sources of this checkout.
  execFileSync(process.execPath, [fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url)), '-p', fileURLToPath(new URL('../tsconfig.build.json', import.meta.url))], { stdio: 'inherit' });
  const say = (text: string) => {
    if (!args.json) process.stderr.write(`${text}\n`);
  };
  const run = randomBytes(4).toString('hex');
  const names = { a: `relay_bench_${run}_a`, b: `relay_bench_${run}_b`, c: `relay_bench_${run}_c` };
  const urls = { a: `${PG}/${names.a}`, b: `${PG}/${names.b}`, c: `${PG}/${names.c}` };
  const config = topologyConfig(run, urls, args.partitions);
  const topology = defineTopology(config);
  const children: ChildProcess[] = [];
  try {
    // A run starts on a clean server: the checkpoint that the previous run's DROP DATABASE asked for (its
    // dirty buffers) is written now, not during the measurement.
    await pgAdmin((c) => c.query('CHECKPOINT'));
    for (const name of Object.values(names)) {
      await pgAdmin((c) => c.query(`CREATE DATABASE ${name}`));
      await pgAdmin(
        (c) => c.query("CREATE TABLE ledger (id BIGSERIAL PRIMARY KEY, k TEXT NOT NULL, v INTEGER NOT NULL, emitted_ms DOUBLE PRECISION NOT NULL, applied_ms DOUBLE PRECISION NOT NULL DEFAULT (extract(epoch from clock_timestamp()) * 1000))"),
        name,
      );
    }
    // Declare the broker objects and the relay tables once, before the relays and the emitter race for them.
    const setup = await startRelay({ topology, node: 'a1', amqpUrl: AMQP_URL, keys: KEYS, logger: silentLogger });
    let connected = false;
    for (let i = 0; i < 100 && !connected; i++) {
      connected = (await setup.status()).brokerConnected;
      if (!connected) await sleep(50);
    }
    await setup.close();
    if (!connected) throw new Error(`bench/relay: RabbitMQ at ${AMQP_URL.replace(/:[^:@/]*@/, ':***@')} did not answer within 5 s`);
    for (const node of ['a1', 'b1', 'c1']) {
      const child = spawn(process.execPath, [...(process.env.BATON_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BATON_BENCH_PROFILE}`] : []), fileURLToPath(new URL('relay-child.mjs', import.meta.url)), JSON.stringify({ config, node, batch: args.batch, keys: KEYS, amqpUrl: AMQP_URL })], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        createInterface({ input: child.stdout! }).once('line', () => resolve());
        child.once('exit', (code) => reject(new Error(`relay ${node} exited with ${code}`)));
      });
    }
    say(`relays ready; emitting ${args.rate}/s for ${args.warmup}s of warm-up and ${args.seconds}s measured, over ${args.keys} keys`);

    const client = await openRelayClient({ topology, node: 'a1', app: 'bench', database: { poolSize: 4 } });
    const relayPids = children.map((c) => c.pid as number);
    const cpuNow = () => ({ relays: cpuMs({ pids: relayPids }), emitter: process.cpuUsage(), postgres: cpuMs({ names: ['postgres'] }), rabbitmq: cpuMs({ names: ['beam.smp'] }) });
    let cpuBefore = cpuNow();
    // The warm-up (connections opening, JIT, first plans) ramps the rate up from a fifth, so that it leaves
    // no backlog to the measured part. Its changes (v < warm) are checked for loss and duplicates like the
    // others, but kept out of the latency and throughput figures, which report them apart.
    const warmTicks = Math.round(args.warmup * 100);
    let warm = 0;
    const measuredTotal = Math.round(args.rate * args.seconds);
    const perTick = Math.max(1, Math.round(args.rate / 100));
    let emitted = 0;
    let inflight = 0;
    let behind = 0;
    const started = Date.now();
    const emits: Promise<void>[] = [];
    for (let tick = 0; emitted - warm < measuredTotal && tick < (args.warmup + args.seconds) * 100 * 3; tick++) {
      if (tick === warmTicks) {
        warm = emitted;
        cpuBefore = cpuNow();
      }
      const due = started + tick * 10;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      // At most 4 transactions in flight (the pool's size): past that the emitter, not the relay, is the limit.
      if (inflight >= 4) {
        behind++;
        await Promise.race(emits);
      }
      const from = emitted;
      const n = tick < warmTicks ? Math.max(1, Math.round(perTick * (0.2 + (0.8 * tick) / warmTicks))) : Math.min(perTick, warm + measuredTotal - emitted);
      emitted += n;
      inflight++;
      const p = client
        .transaction(async (tx) => {
          const changes = [];
          for (let i = from; i < from + n; i++) {
            const k = `k${i % args.keys}`;
            changes.push({ statement: 'put', args: { k, v: i, t: Date.now() }, key: k });
          }
          await client.emitMany(tx, changes);
        })
        .finally(() => {
          inflight--;
          emits.splice(emits.indexOf(p), 1);
        });
      emits.push(p);
    }
    await Promise.all(emits);
    const emitSeconds = (Date.now() - started) / 1000;
    say(`emitted ${emitted} in ${emitSeconds.toFixed(1)}s (${behind} ticks waited for the database)`);
    await client.close();

    // Wait (bounded) until C has every change or nothing moves for 10 s.
    let last = -1;
    let still = Date.now();
    for (let i = 0; i < 1200; i++) {
      const n = await pgAdmin(async (c) => Number((await c.query('SELECT COUNT(*) AS n FROM ledger')).rows[0].n), names.c);
      if (n >= emitted) break;
      if (n !== last) {
        last = n;
        still = Date.now();
      } else if (Date.now() - still > 10_000) break;
      await sleep(100);
    }
    const emitterUsage = process.cpuUsage(cpuBefore.emitter);
    const cpuUsed = {
      relays: cpuMs({ pids: relayPids }) - cpuBefore.relays,
      emitter: (emitterUsage.user + emitterUsage.system) / 1000,
      postgres: cpuMs({ names: ['postgres'] }) - cpuBefore.postgres,
      rabbitmq: cpuMs({ names: ['beam.smp'] }) - cpuBefore.rabbitmq,
    };
    const result = await pgAdmin(async (c) => {
      const rows = (await c.query<{ v: number; emitted_ms: number; applied_ms: number }>('SELECT v, emitted_ms, applied_ms FROM ledger')).rows;
      return rows;
    }, names.c);
    const rowsB = await pgAdmin(async (c) => (await c.query<{ v: number; emitted_ms: number; applied_ms: number }>('SELECT v, emitted_ms, applied_ms FROM ledger')).rows, names.b);
    const atB = rowsB.map((r) => r.v);
    const toB = rowsB.filter((r) => r.v >= warm).map((r) => Number(r.applied_ms) - Number(r.emitted_ms)).sort((x, y) => x - y);
    say(`emit → B: p50 ${percentile(toB, 50).toFixed(1)} ms, p99 ${percentile(toB, 99).toFixed(1)} ms`);
    const seen = new Map<number, number>();
    for (const row of result) seen.set(row.v, (seen.get(row.v) ?? 0) + 1);
    const seenB = new Map<number, number>();
    for (const v of atB) seenB.set(v, (seenB.get(v) ?? 0) + 1);
    let lost = 0;
    let duplicated = 0;
    for (let v = 0; v < emitted; v++) {
      for (const map of [seen, seenB]) {
        const times = map.get(v) ?? 0;
        if (times === 0) lost++;
        if (times > 1) duplicated += times - 1;
      }
    }
    const latencyOf = (rows: typeof result) => rows.map((r) => Number(r.applied_ms) - Number(r.emitted_ms)).sort((x, y) => x - y);
    const measured = result.filter((r) => r.v >= warm);
    const latencies = latencyOf(measured);
    const warmupLatencies = latencyOf(result.filter((r) => r.v < warm));
    const firstEmit = measured.reduce((min, r) => Math.min(min, Number(r.emitted_ms)), Infinity); // no spread: 300,000 arguments overflow the stack
    const bySecond = new Map<number, number[]>();
    for (const r of result) {
      const second = Math.floor((Number(r.emitted_ms) - firstEmit) / 1000); // negative: warm-up
      let list = bySecond.get(second);
      if (!list) bySecond.set(second, (list = []));
      list.push(Number(r.applied_ms) - Number(r.emitted_ms));
    }
    say(`emit → C by second of the run (p50/p99 ms): ${[...bySecond].sort(([a], [b]) => a - b).map(([s, l]) => { l.sort((x, y) => x - y); return `${s}: ${percentile(l, 50).toFixed(0)}/${percentile(l, 99).toFixed(0)}`; }).join(', ')}`);
    const lastApply = measured.reduce((max, r) => Math.max(max, Number(r.applied_ms)), -Infinity);
    const round = (ms: number) => Math.round(ms * 10) / 10;
    const summary = {
      changesPerSec: Math.round(measured.length / ((lastApply - firstEmit) / 1000)),
      p50Ms: round(percentile(latencies, 50)),
      p99Ms: round(percentile(latencies, 99)),
      lost,
      duplicated,
      ...(warm > 0 ? { warmup: { seconds: args.warmup, p50Ms: round(percentile(warmupLatencies, 50)), p99Ms: round(percentile(warmupLatencies, 99)) } } : {}),
      partitions: args.partitions,
      cpuMsPerChange: Object.fromEntries(
        [...Object.entries(cpuUsed), ['total', Object.values(cpuUsed).reduce((a, b) => a + b, 0)] as const].map(([part, ms]) => [part, Math.round((ms / Math.max(1, measured.length)) * 1000) / 1000]),
      ),
    };
    say(`C applied ${result.length}/${emitted}; ${JSON.stringify(summary)}`);
    if (args.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.all(children.map((child) => (child.exitCode !== null ? undefined : Promise.race([new Promise((r) => child.once('exit', r)), sleep(5000)]))));
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await deleteBroker(topology).catch(() => undefined);
    for (const name of Object.values(names)) await pgAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).catch(() => undefined);
  }
}

async function deleteBroker(topology: ReturnType<typeof defineTopology>): Promise<void> {
  const amqp = (await import('amqplib')).default;
  const connection = await amqp.connect(AMQP_URL);
  connection.on('error', () => undefined);
  try {
    const channel = await connection.createChannel();
    await deleteTopology(channel, topology);
    await channel.close();
  } finally {
    await connection.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench/relay: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
