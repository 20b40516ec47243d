/**
 * The chaos harness: starts N real node processes (test/chaos/node.ts on the built dist/) on a store,
 * injects faults from a seeded PRNG, then stops everything, reads the store's final state and runs the
 * checker over the merged histories. Every child process, proxy, namespace and private server is torn
 * down in `finally`, and every loop is bounded in count and time.
 *
 * Faults (which apply depends on the store, see `faultKinds`):
 * - `kill`: SIGKILL a node (preferably an owner); a replacement node starts shortly after.
 * - `pause`: SIGSTOP a node for 0.5×–4× the TTL, then SIGCONT: a zombie owner wakes and tries to write.
 * - `cut`: the node's TCP proxy drops every connection and refuses new ones for 0.3×–3× the TTL.
 * - `partition`: the node runs in its own network namespace; its veth silently drops everything
 *   (netem loss 100%, or the link set down) for 0.5×–3× the TTL. Root on Linux only.
 * - `restart`: SIGKILL the private store server and start it again on the same data.
 * - `skew`: set a node's wall-clock offset to a random value within ±maxSkewMs.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { checkHistory, type CheckResult } from './checker.js';
import { monoNow, type FinalRecord, type HistoryEvent } from './history.js';
import { mulberry32, type ChaosNodeConfig } from './workload.js';
import { memoryChaos, startMemoryNode, type MemoryChaos, type MemoryNode } from './memory-node.js';
import type { Store } from '../../dist/stores/contract.js';
import { CHAOS_STORE_KINDS, externalServer, startChaosServer, type ChaosServer, type ChaosStoreKind } from './servers.js';

export type FaultKind = 'kill' | 'pause' | 'cut' | 'partition' | 'restart' | 'skew';
export const ALL_FAULTS: readonly FaultKind[] = ['kill', 'pause', 'cut', 'partition', 'restart', 'skew'];

export interface ChaosOptions {
  /** A store kind (a private server is started) or a URL of a server on 127.0.0.1 (never restarted). */
  readonly store: string;
  readonly faults: number;
  readonly seed?: number;
  readonly nodes?: number;
  readonly tasks?: number;
  readonly everyMs?: number;
  readonly ttlMs?: number;
  readonly workMs?: number;
  readonly locks?: number;
  /** Mean pause between two faults. */
  readonly faultEveryMs?: number;
  readonly maxSkewMs?: number;
  /** Restrict the fault kinds (default: every kind the store supports). */
  readonly faultKinds?: readonly FaultKind[];
  /** NEGATIVE CONTROL: the nodes write without guards (see node.ts). */
  readonly unfenced?: boolean;
  /** Use network namespaces for partitions when possible (default true). */
  readonly netns?: boolean;
  /** Keep the run directory (histories) even when the run passes. */
  readonly keep?: boolean;
  /** Ends the fault phase early (e.g. on Ctrl-C); the run still heals, stops and cleans up. */
  readonly signal?: AbortSignal;
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
}

export interface ChaosSummary {
  readonly store: ChaosStoreKind;
  readonly seed: number;
  readonly faults: number;
  readonly faultsByKind: Record<string, number>;
  /** Violations plus undecidable findings: both are failures. */
  readonly violations: number;
  readonly runs: number;
  readonly failoverP50Ms: number | null;
  readonly failoverP99Ms: number | null;
  readonly failoverSamples: number;
  /** Nodes that exited without being killed (failed start, crash); restarted by the harness. */
  readonly unexpectedExits: readonly string[];
  readonly durationMs: number;
  readonly check: CheckResult;
  /** The run directory when kept (failure or `keep`). */
  readonly dir?: string;
}

/** What a `cut` acts on: the node's TCP proxy, or the in-process node's memory store handle. */
interface Link {
  cut(): void;
  restore(): void;
}

interface NodeSlot {
  readonly index: number;
  proxy?: TcpProxy;
  link?: Link;
  netns?: Netns;
  node?: RunningNode;
  generation: number;
  /** Not eligible for another fault until this monotonic time. */
  busyUntil: number;
  paused: boolean;
}

/** A node process, or an in-process node of the memory store (memory-node.ts) that mimics one. */
export interface RunningNode {
  readonly id: string;
  /** SIGKILL, SIGSTOP, SIGCONT, SIGTERM — or their in-process equivalents. */
  signal(signal: 'SIGKILL' | 'SIGSTOP' | 'SIGCONT' | 'SIGTERM'): void;
  /** Sets the node's wall-clock offset. */
  skew(offsetMs: number): void;
  readonly exited: Promise<void>;
  alive: boolean;
  ready: boolean;
  /** Killed or stopped by the harness. */
  expectedExit: boolean;
}

/** What a node tells the harness (owner changes, readiness). */
export interface NodeMessage {
  readonly type: string;
  readonly node: string;
  readonly m: number;
  readonly task?: string;
}

const NODE_ENTRY = fileURLToPath(new URL('./node.ts', import.meta.url));
const DIST_ENTRY = fileURLToPath(new URL('../../dist/node/node.js', import.meta.url));

export function faultKinds(kind: ChaosStoreKind, canRestart: boolean, netns: boolean): FaultKind[] {
  if (kind === 'sqlite') return ['kill', 'pause', 'skew'];
  if (kind === 'memory') return ['kill', 'pause', 'cut', 'skew'];
  return ['kill', 'pause', 'cut', 'skew', ...(canRestart ? (['restart'] as const) : []), ...(netns ? (['partition'] as const) : [])];
}

export function percentile(samples: readonly number[], p: number): number | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round(sorted[rank] as number);
}

/** How often each fault is chosen, relative to the others. */
const FAULT_WEIGHTS: Record<FaultKind, number> = { kill: 3, pause: 3, cut: 2, partition: 2, restart: 1, skew: 1 };

function weightedPick(kinds: readonly FaultKind[], random: () => number): FaultKind {
  const total = kinds.reduce((sum, k) => sum + FAULT_WEIGHTS[k], 0);
  let r = random() * total;
  for (const k of kinds) {
    r -= FAULT_WEIGHTS[k];
    if (r < 0) return k;
  }
  return kinds[kinds.length - 1] as FaultKind;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function runChaos(options: ChaosOptions): Promise<ChaosSummary> {
  if (!existsSync(DIST_ENTRY)) throw new Error('chaos: dist/ is missing; run `npm run build` first');
  const started = monoNow();
  const log = options.log ?? (() => undefined);
  const seed = options.seed ?? randomBytes(4).readUInt32BE(0);
  const random = mulberry32(seed); // small, seedable, good enough to pick faults
  const nodesWanted = options.nodes ?? 3;
  const tasks = options.tasks ?? 3;
  const everyMs = options.everyMs ?? 200;
  const ttlMs = options.ttlMs ?? 1000;
  const workMs = options.workMs ?? 60;
  const locks = options.locks ?? 2;
  const faultEveryMs = options.faultEveryMs ?? 900;
  const maxSkewMs = options.maxSkewMs ?? 3000;
  const unfenced = options.unfenced ?? false;
  const runId = randomBytes(2).toString('hex');
  const cluster = `chaos-${runId}`;
  const dir = mkdtempSync(join(tmpdir(), 'baton-chaos-run-'));
  log(`chaos: store ${options.store}, ${options.faults} faults, seed ${seed}, ${nodesWanted} nodes, ttl ${ttlMs}ms, dir ${dir}`);

  const slots: NodeSlot[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let server: ChaosServer | undefined;
  let kind: ChaosStoreKind;
  let keep = options.keep ?? false;
  const owners = new Map<string, string>();
  const pendingFailovers: { task: string; from: string; atM: number }[] = [];
  const failovers: number[] = [];
  const faultsByKind: Record<string, number> = {};
  let injected = 0;
  let stopping = false;
  const unexpectedExits: string[] = [];
  let check: CheckResult | undefined;

  const later = (ms: number, fn: () => void | Promise<void>) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      void Promise.resolve()
        .then(fn)
        .catch((error: unknown) => log(`chaos: ${String(error)}`));
    }, ms);
    timers.add(timer);
  };

  try {
    if ((CHAOS_STORE_KINDS as readonly string[]).includes(options.store)) {
      kind = options.store as ChaosStoreKind;
      log(`chaos: starting a private ${kind} server`);
      server = await startChaosServer(kind);
    } else {
      const external = externalServer(options.store);
      kind = external.kind;
      server = external.server;
    }
    const srv = server;
    const memory: MemoryChaos | undefined = kind === 'memory' ? memoryChaos() : undefined;
    const useNetns = kind !== 'sqlite' && kind !== 'memory' && (options.netns ?? true) && netnsAvailable();
    let kinds = faultKinds(kind, srv.restart !== undefined, useNetns);
    if (options.faultKinds) kinds = kinds.filter((k) => options.faultKinds?.includes(k));
    if (kinds.length === 0) throw new Error(`chaos: none of the requested faults applies to ${kind}`);
    log(`chaos: faults ${kinds.join(', ')}${useNetns ? ' (partitions in network namespaces)' : ''}`);

    const directUrl = srv.url('127.0.0.1', srv.port);
    for (let i = 0; i < nodesWanted; i++) {
      const slot: NodeSlot = { index: i, generation: 0, busyUntil: 0, paused: false };
      if (kind !== 'sqlite' && kind !== 'memory') {
        if (useNetns) slot.netns = createNetns(runId, i);
        slot.proxy = new TcpProxy('127.0.0.1', srv.port, slot.netns?.hostIp ?? '127.0.0.1');
        slot.link = slot.proxy;
        await slot.proxy.start();
      }
      slots.push(slot);
    }

    const onMessage = (slot: NodeSlot, message: NodeMessage) => {
      if (message.type === 'ready' && slot.node?.id === message.node) slot.node.ready = true;
      if (message.type === 'owner' && message.task) {
        owners.set(message.task, message.node);
        for (let i = pendingFailovers.length - 1; i >= 0; i--) {
          const p = pendingFailovers[i] as (typeof pendingFailovers)[number];
          if (p.task === message.task && message.m >= p.atM) {
            failovers.push(message.m - p.atM);
            pendingFailovers.splice(i, 1);
          }
        }
      }
      if (message.type === 'unowned' && message.task && owners.get(message.task) === message.node) owners.delete(message.task);
    };

    const startNode = (slot: NodeSlot) => {
      slot.generation += 1;
      const id = `n${slot.index}g${slot.generation}`;
      const url = slot.proxy ? srv.url(slot.netns?.hostIp ?? '127.0.0.1', slot.proxy.port) : directUrl;
      const config: ChaosNodeConfig = {
        store: url,
        cluster,
        id,
        history: join(dir, `${id}.jsonl`),
        tasks,
        everyMs,
        workMs,
        ttlMs,
        locks,
        skewMs: Math.round((random() * 2 - 1) * maxSkewMs),
        unfenced,
        seed: Math.floor(random() * 2 ** 31),
      };
      const onExit = (node: RunningNode, how: string) => {
        node.alive = false;
        if (node.expectedExit || stopping) return;
        // A node that dies on its own (failed start, crash): a finding worth a line; keep the slot filled.
        unexpectedExits.push(`${id} exited with ${how}`);
        log(`chaos: ${id} exited unexpectedly (${how}); see ${join(dir, `${id}.stderr`)}`);
        if (unexpectedExits.length < 50) later(500, () => void startNode(slot));
      };
      const node =
        memory !== undefined
          ? startMemoryNode({ config, memory, onMessage: (m) => onMessage(slot, m), onExit, errorFile: join(dir, `${id}.stderr`) })
          : startProcessNode({ config, netns: slot.netns, dir, onMessage: (m) => onMessage(slot, m), onExit });
      if (memory !== undefined) slot.link = (node as MemoryNode).link;
      slot.node = node;
      return node;
    };

    for (const slot of slots) startNode(slot);
    const readyBy = Date.now() + 90_000;
    while (Date.now() < readyBy && !slots.every((s) => s.node?.ready)) await sleep(100);
    if (!slots.every((s) => s.node?.ready)) {
      keep = true;
      throw new Error(`chaos: nodes did not start within 90 s (see ${dir}/*.stderr)`);
    }
    const ownedBy = Date.now() + 30_000;
    while (Date.now() < ownedBy && owners.size < tasks) await sleep(100);
    log(`chaos: ${nodesWanted} nodes up, ${owners.size}/${tasks} tasks owned`);

    // --- the fault loop: bounded by the fault count and by a time limit.
    const deadline = Date.now() + options.faults * faultEveryMs * 4 + 120_000;
    let restarting = false;
    let lastRestartM = 0;
    const healthy = () => slots.filter((s) => s.node?.alive && s.node.ready && s.busyUntil <= monoNow() && !s.paused);
    const tasksOf = (slot: NodeSlot) => [...owners].filter(([, n]) => n === slot.node?.id).map(([t]) => t);
    const expectFailover = (slot: NodeSlot, atM: number) => {
      for (const task of tasksOf(slot)) pendingFailovers.push({ task, from: slot.node?.id as string, atM });
    };

    for (let attempt = 0; injected < options.faults && attempt < options.faults * 20 && Date.now() < deadline && !options.signal?.aborted; attempt++) {
      await sleep(Math.round(faultEveryMs * (0.6 + random() * 0.8)));
      const candidates = healthy();
      // Keep one node out of trouble, so some node is always alive to run or record every tick.
      const targets = candidates.length >= 2 ? candidates : [];
      const possible = kinds.filter((k) => {
        if (k === 'restart') return !restarting && monoNow() - lastRestartM > ttlMs * 6;
        if (k === 'skew') return candidates.length > 0;
        return targets.length > 0;
      });
      // With every node busy, wait rather than pile clock skews up (they would crowd out the other faults).
      if (possible.length === 0 || (targets.length === 0 && random() < 0.75)) continue;
      const fault = weightedPick(possible, random);
      // Prefer owners: that is where faults bite.
      const owning = targets.filter((s) => tasksOf(s).length > 0);
      const pool = owning.length > 0 && random() < 0.8 ? owning : targets.length > 0 ? targets : candidates;
      const slot = pool[Math.floor(random() * pool.length)] as NodeSlot;
      const node = slot.node as RunningNode;
      const atM = monoNow();
      injected += 1;
      faultsByKind[fault] = (faultsByKind[fault] ?? 0) + 1;
      switch (fault) {
        case 'kill': {
          expectFailover(slot, atM);
          node.expectedExit = true;
          node.signal('SIGKILL');
          slot.busyUntil = atM + 1e9;
          log(`chaos: #${injected} kill -9 ${node.id} (owned ${tasksOf(slot).join(',') || 'nothing'})`);
          later(200 + Math.floor(random() * 800), async () => {
            await node.exited;
            startNode(slot);
            slot.busyUntil = monoNow() + ttlMs;
          });
          break;
        }
        case 'pause': {
          const ms = Math.round(ttlMs * (0.5 + random() * 3.5));
          if (ms > ttlMs) expectFailover(slot, atM);
          node.signal('SIGSTOP');
          slot.paused = true;
          log(`chaos: #${injected} SIGSTOP ${node.id} for ${ms}ms`);
          later(ms, () => {
            if (node.alive) node.signal('SIGCONT');
            slot.paused = false;
            slot.busyUntil = monoNow() + ttlMs;
          });
          break;
        }
        case 'cut': {
          const ms = Math.round(ttlMs * (0.3 + random() * 2.7));
          if (ms > ttlMs) expectFailover(slot, atM);
          slot.link?.cut();
          slot.busyUntil = atM + ms + ttlMs;
          log(`chaos: #${injected} cut ${node.id} from the store for ${ms}ms`);
          later(ms, () => slot.link?.restore());
          break;
        }
        case 'partition': {
          const ms = Math.round(ttlMs * (0.5 + random() * 2.5));
          if (ms > ttlMs) expectFailover(slot, atM);
          slot.netns?.partition();
          slot.busyUntil = atM + ms + ttlMs;
          log(`chaos: #${injected} partition ${node.id} (netns ${slot.netns?.name}) for ${ms}ms`);
          later(ms, () => slot.netns?.heal());
          break;
        }
        case 'skew': {
          const offsetMs = Math.round((random() * 2 - 1) * maxSkewMs);
          node.skew(offsetMs);
          log(`chaos: #${injected} skew ${node.id} wall clock by ${offsetMs}ms`);
          break;
        }
        case 'restart': {
          restarting = true;
          lastRestartM = atM;
          log(`chaos: #${injected} restart the ${kind} server`);
          later(0, async () => {
            try {
              await srv.restart?.();
              log(`chaos: ${kind} server back after ${Math.round(monoNow() - atM)}ms`);
            } finally {
              restarting = false;
            }
          });
          break;
        }
      }
    }
    log(`chaos: ${injected} faults injected; healing and letting the cluster settle`);

    // --- heal everything, let the cluster settle, stop the nodes cleanly.
    const settleBy = Date.now() + 120_000;
    while (restarting && Date.now() < settleBy) await sleep(100);
    for (const slot of slots) {
      slot.link?.restore();
      slot.netns?.heal();
      if (slot.node?.alive) slot.node.signal('SIGCONT');
      slot.paused = false;
    }
    await sleep(Math.min(8000, ttlMs * 3 + 1000));
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    stopping = true;
    for (const slot of slots) if (slot.node?.alive) slot.node.signal('SIGCONT');
    for (const slot of slots) if (slot.node?.alive) slot.node.signal('SIGTERM');
    await Promise.race([Promise.all(slots.map((s) => s.node?.exited)), sleep(15_000)]);
    for (const slot of slots) if (slot.node?.alive) slot.node.signal('SIGKILL');
    await Promise.all(slots.map((s) => s.node?.exited));

    // --- the store's final state, read directly (not through a proxy).
    const final = memory !== undefined ? await readFinalRecords(memory.backend.connect(cluster)) : await readFinalState(directUrl, cluster);
    const { events, malformed } = readHistories(dir);
    check = checkHistory({ events, malformed, final, tasks: Array.from({ length: tasks }, (_, i) => ({ name: `t${i}`, intervalMs: everyMs })) });
    if (!check.ok) keep = true;
    const summary: ChaosSummary = {
      store: kind,
      seed,
      faults: injected,
      faultsByKind,
      violations: check.violations.length + check.undecidable.length,
      runs: check.stats.runs,
      failoverP50Ms: percentile(failovers, 50),
      failoverP99Ms: percentile(failovers, 99),
      failoverSamples: failovers.length,
      unexpectedExits,
      durationMs: Math.round(monoNow() - started),
      check,
      ...(keep ? { dir } : {}),
    };
    return summary;
  } catch (error) {
    keep = true;
    throw error;
  } finally {
    stopping = true;
    for (const timer of timers) clearTimeout(timer);
    for (const slot of slots) {
      const node = slot.node;
      if (node?.alive) {
        node.signal('SIGKILL');
        await Promise.race([node.exited, sleep(5000)]);
      }
    }
    for (const slot of slots) {
      await slot.proxy?.close().catch(() => undefined);
      slot.netns?.destroy();
    }
    await server?.stop().catch(() => undefined);
    if (!keep) rmSync(dir, { recursive: true, force: true });
    else log(`chaos: histories kept in ${dir}`);
  }
}

export async function readFinalState(url: string, cluster: string): Promise<FinalRecord[]> {
  const { openStore } = (await import('../../dist/stores/open-store.js')) as typeof import('../../dist/stores/open-store.js');
  let lastError: unknown;
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const store = await openStore(url, { cluster });
      try {
        return await readFinalRecords(store);
      } finally {
        await store.close();
      }
    } catch (error) {
      lastError = error;
      await sleep(500);
    }
  }
  throw new Error(`chaos: could not read the final state: ${String(lastError)}`);
}

async function readFinalRecords(store: Pick<Store, 'list'>): Promise<FinalRecord[]> {
  const records: FinalRecord[] = [];
  for (const prefix of ['run/', 'checkpoint/', 'chaos/']) {
    for (const r of await store.list(prefix)) records.push({ key: r.key, value: r.value, version: r.version });
  }
  return records;
}

/** A node process running node.ts on the built library, in its network namespace when it has one. */
export function startProcessNode(options: {
  config: ChaosNodeConfig;
  netns: Netns | undefined;
  dir: string;
  onMessage: (message: NodeMessage) => void;
  onExit: (node: RunningNode, how: string) => void;
}): RunningNode {
  const { config, netns, dir } = options;
  const args = ['--import', 'tsx', NODE_ENTRY, '--config', JSON.stringify(config)];
  const stderr = openSync(join(dir, `${config.id}.stderr`), 'a');
  const child: ChildProcess = netns
    ? spawn('ip', ['netns', 'exec', netns.name, process.execPath, ...args], { stdio: ['pipe', 'pipe', stderr] })
    : spawn(process.execPath, args, { stdio: ['pipe', 'pipe', stderr] });
  closeSync(stderr);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  const node: RunningNode = {
    id: config.id,
    signal: (signal) => void child.kill(signal),
    skew: (offsetMs) => void child.stdin?.write(`${JSON.stringify({ cmd: 'skew', offsetMs })}\n`),
    exited,
    alive: true,
    ready: false,
    expectedExit: false,
  };
  void exited.then(() => options.onExit(node, String(child.exitCode ?? child.signalCode)));
  child.stdin?.on('error', () => undefined);
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    try {
      options.onMessage(JSON.parse(line) as NodeMessage);
    } catch {
      // not ours
    }
  });
  return node;
}

export function readHistories(dir: string): { events: HistoryEvent[]; malformed: string[] } {
  const events: HistoryEvent[] = [];
  const malformed: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort()) {
    const lines = readFileSync(join(dir, file), 'utf8').split('\n');
    for (const line of lines) {
      if (line === '') continue;
      try {
        events.push(JSON.parse(line) as HistoryEvent);
      } catch {
        malformed.push(`${file}: ${line}`);
      }
    }
  }
  return { events, malformed };
}

// --- network namespaces (root on Linux): one per node slot, our own veth pair, bounded to this run.

interface Netns {
  readonly name: string;
  readonly hostIp: string;
  partition(): void;
  heal(): void;
  destroy(): void;
}

let netnsChecked: boolean | undefined;

function netnsAvailable(): boolean {
  if (netnsChecked !== undefined) return netnsChecked;
  netnsChecked = false;
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  const probe = `bcprobe${randomBytes(2).toString('hex')}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
    netnsChecked = true;
  } catch {
    netnsChecked = false;
  }
  return netnsChecked;
}

function createNetns(runId: string, index: number): Netns {
  const name = `bc${runId}${index}`;
  const hostIf = `bch${runId}${index}`;
  const nsIf = `bcn${runId}${index}`;
  // 10.213.0.0/16, one /30 per (run, slot): the run id picks the third octet's block.
  const third = (parseInt(runId, 16) % 64) * 4 + (index % 4);
  const hostIp = `10.213.${third}.1`;
  const nsIp = `10.213.${third}.2`;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'ignore', timeout: 10_000 });
  const inNs = (...args: string[]) => ip('netns', 'exec', name, ...args);
  const tc = (...args: string[]) => execFileSync('tc', args, { stdio: 'ignore', timeout: 10_000 });
  ip('netns', 'add', name);
  try {
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
    ip('link', 'set', nsIf, 'netns', name);
    ip('addr', 'add', `${hostIp}/30`, 'dev', hostIf);
    ip('link', 'set', hostIf, 'up');
    inNs('ip', 'addr', 'add', `${nsIp}/30`, 'dev', nsIf);
    inNs('ip', 'link', 'set', nsIf, 'up');
    inNs('ip', 'link', 'set', 'lo', 'up');
  } catch (error) {
    try {
      ip('netns', 'del', name);
    } catch {
      // best effort
    }
    try {
      ip('link', 'del', hostIf);
    } catch {
      // best effort
    }
    throw error;
  }
  let netem: boolean | undefined;
  let partitioned = false;
  return {
    name,
    hostIp,
    partition() {
      if (partitioned) return;
      partitioned = true;
      // Silent loss (packets vanish, no RST) where netem exists; otherwise the link goes down.
      if (netem !== false) {
        try {
          inNs('tc', 'qdisc', 'add', 'dev', nsIf, 'root', 'netem', 'loss', '100%');
          netem = true;
          tc('qdisc', 'add', 'dev', hostIf, 'root', 'netem', 'loss', '100%');
          return;
        } catch {
          netem = false;
        }
      }
      ip('link', 'set', hostIf, 'down');
    },
    heal() {
      if (!partitioned) return;
      partitioned = false;
      try {
        if (netem) {
          inNs('tc', 'qdisc', 'del', 'dev', nsIf, 'root');
          tc('qdisc', 'del', 'dev', hostIf, 'root');
        }
        else ip('link', 'set', hostIf, 'up');
      } catch {
        // best effort; destroy() removes everything
      }
    },
    destroy() {
      try {
        ip('netns', 'del', name);
      } catch {
        // already gone
      }
      try {
        ip('link', 'del', hostIf);
      } catch {
        // deleted with the namespace
      }
    },
  };
}
