/**
 * A monitor: reads the cluster's status from the store every `pollEvery` (sooner on a store hint), turns
 * the differences into events, decides alerts when it is the elected alerter, exports Prometheus
 * metrics, and serves all of it over HTTP with the dashboard. The same code runs standalone
 * (`baton serve`) and inside a node (`cluster.monitor()`); it needs nothing but the store.
 *
 * ```ts
 * const monitor = await startMonitor({ store: 'postgres://…', cluster: 'shop', listen: '127.0.0.1:7070' });
 * console.log(`open ${monitor.url}?token=${monitor.token}`);
 * // … on shutdown:
 * await monitor.close();
 * ```
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import { sleep, systemClock, type Clock } from '../core/clock.js';
import { describe as describeValue, parseDuration, type Duration } from '../core/duration.js';
import { BatonError, ClosedError, ConfigError, toError } from '../core/errors.js';
import { randomId } from '../core/ids.js';
import { defaultLogger, type Logger } from '../core/logger.js';
import { BATON_VERSION, type NodeInfo } from '../core/node-info.js';
import { currentProcessIdentity } from '../core/process-identity.js';
import { SessionKeeper } from '../cluster/session-keeper.js';
import { resolveSessionTiming } from '../cluster/session-timing.js';
import { recentActions, sendControl } from '../scheduler/controls.js';
import { assertTaskName } from '../scheduler/keys.js';
import { soleUnit, type TaskName } from '../scheduler/names.js';
import type { RunRecord } from '../scheduler/task.js';
import type { Store } from '../stores/contract.js';
import { openStore } from '../stores/open-store.js';
import { Alerter, readActiveAlerts } from './alerting.js';
import { parseAlertRules, type AlertRuleOptions } from './alert-rules.js';
import { changesBetween, type Observation } from './changes.js';
import { createApiServer, type ApiServer, type ControlRequest, type RunsQuery, type StreamItem } from './http-api.js';
import { readRun, readRunHistory, type RunHistoryPage, type RunHistoryQuery } from './run-history.js';
import { MonitorMetrics } from './metrics.js';
import type { MonitorEvent, MonitorStatus, StampedEvent } from './monitor-events.js';
import { isRelayStatusProvider, RelayWatch, type RelayStatusProvider } from './relay-watch.js';
import { readStatusWithRuns } from './status.js';
import { OwnerLog, type OwnerChange, type OwnerChangeInfo, type OwnerChangeQuery } from './owner-log.js';
import { hasChanges, StatusDeltas } from './status-delta.js';
import { parseWebhookOptions, WebhookSender, type WebhookOptions } from './webhook.js';

export interface MonitorOptions {
  /** A store URL, or an opened Store (then you close it yourself). */
  readonly store: string | Store;
  /** The cluster to watch when `store` is a URL. Default `"default"`. */
  readonly cluster?: string;
  /**
   * Where the HTTP API and dashboard listen: `host:port` (`[::1]:7070`), port 0 for any free port.
   * Default `127.0.0.1:7070`; `false`: no HTTP (alerts and events only).
   */
  readonly listen?: string | false;
  /**
   * The bearer token of the API and dashboard (at least 16 characters). Default: a random one, readable
   * as `monitor.token` (print it once). `false` turns reads without a token on — loopback addresses only;
   * write actions then stay refused.
   */
  readonly token?: string | false;
  /** How often the status is read from the store. Default 500ms. */
  readonly pollEvery?: Duration;
  /** Alert rules and their webhook; `false`: this monitor never decides alerts (it still shows them). */
  readonly alerts?: (AlertRuleOptions & { readonly webhook?: WebhookOptions }) | false;
  /**
   * Relays to watch (docs/relay.md), each given by its status provider (`relayStatusProvider()` of
   * `baton-fleet/relay`): outbox depth and lag, held, parked, queue and dead-letter depths in the status,
   * `/metrics`, the dashboard and the `relay-*` alert rules. Default none.
   */
  readonly relays?: readonly RelayStatusProvider[];
  /** How often the watched relays are inspected (each inspection connects to their databases and broker). Default 5s. */
  readonly relayPollEvery?: Duration;
  /** TTL of the monitor's session (it elects the alerter). Default 5s. */
  readonly ttl?: Duration;
  /** Who write actions over the API are recorded as (`by` of the `task:action` event). Default `token`. */
  readonly tokenLabel?: string;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

export interface Monitor {
  /** `http://host:port/` of the API and dashboard; undefined with `listen: false`. */
  readonly url: string | undefined;
  /** The token the API wants; null when reads need none (`token: false`). */
  readonly token: string | null;
  /** The latest snapshot with the active alerts; undefined until the store first answered. */
  status(): MonitorStatus | undefined;
  /** Calls `listener` with every event from now on; returns the unsubscribe function. */
  on(listener: (event: StampedEvent) => void): () => void;
  /** The Prometheus exposition of this monitor's metrics (what `GET /metrics` serves). */
  metrics(): Promise<{ body: string; contentType: string }>;
  /** Reads the store now (tests; the poll loop does it by itself). */
  refresh(): Promise<void>;
  /** Stops polling, hands alerting over, closes the HTTP server and the session. Safe to call twice. */
  close(): Promise<void>;
}

const MONITOR_OPTIONS: ReadonlySet<string> = new Set(['store', 'cluster', 'listen', 'token', 'pollEvery', 'alerts', 'relays', 'relayPollEvery', 'ttl', 'tokenLabel', 'clock', 'logger'] satisfies (keyof MonitorOptions)[]);
/** Events kept for reconnecting event streams (Last-Event-ID). */
const EVENT_BUFFER = 1000;
/** A delta with only the time (nothing else changed) is sent to event streams this often. */
const STATUS_REFRESH_MS = 5000;
const MIN_TOKEN_LENGTH = 16;
/** Newest action records read per poll: more actions than this between two polls show only the newest. */
const ACTIONS_READ = 50;

/** The filters of a history query applied to runs in memory (the snapshot's newest runs). */
function filterRuns(runs: readonly RunRecord[], filters: Omit<RunHistoryQuery, 'units' | 'limit' | 'cursor'>): RunRecord[] {
  return runs.filter((run) => {
    if (filters.statuses && !filters.statuses.has(run.status)) return false;
    if (filters.from !== undefined && run.tick < filters.from) return false;
    if (filters.to !== undefined && run.tick >= filters.to) return false;
    const node = filters.node;
    return node === undefined || run.node === node || run.host === node || `${run.host}:${run.pid}` === node;
  });
}

/** The classification of a kept owner change, as the `owner:changed` event carries it. */
function ownerInfo(change: OwnerChange): OwnerChangeInfo {
  return { kind: change.kind, ...(change.previous ? { previous: change.previous } : {}), ...(change.gapMs !== undefined ? { gapMs: change.gapMs } : {}) };
}

/** The history id of a run record (run-history.ts): its unit, then its trigger id or tick. */
function runIdOf(run: RunRecord): string {
  return `${run.unit}/${run.triggerId ? run.triggerId.replace(/^0+(?=\d)/, '') : run.tick}`;
}

/**
 * Starts a monitor. @throws ConfigError for bad options (naming the field), StoreUrlError /
 * StoreUnavailableError when the store cannot be opened, BatonError `LISTEN_FAILED` when the address is
 * taken or not ours.
 */
export async function startMonitor(options: MonitorOptions): Promise<Monitor> {
  if (typeof options !== 'object' || options === null) throw new ConfigError('monitor: options must be an object');
  const unknown = Object.keys(options).filter((key) => !MONITOR_OPTIONS.has(key));
  if (unknown.length > 0) throw new ConfigError(`monitor: unknown option ${unknown.map((k) => JSON.stringify(k)).join(', ')} (known: ${[...MONITOR_OPTIONS].join(', ')})`);
  const listen = options.listen === false ? null : parseListen(options.listen ?? '127.0.0.1:7070');
  const token = resolveToken(options.token, listen);
  const pollMs = parseDuration(options.pollEvery ?? 500, 'monitor: pollEvery');
  if (pollMs < 50) throw new ConfigError(`monitor: pollEvery must be at least 50ms, got ${pollMs}ms`);
  const thresholds = options.alerts === false ? null : parseAlertRules(options.alerts, 'monitor: alerts');
  const webhook = options.alerts && options.alerts.webhook !== undefined ? parseWebhookOptions(options.alerts.webhook, 'monitor: alerts.webhook') : undefined;
  const timing = resolveSessionTiming(options.ttl !== undefined ? { ttl: options.ttl } : {});
  const clock = options.clock ?? systemClock;
  const log = (options.logger ?? (await defaultLogger())).child({ component: 'monitor' });
  const relayPollMs = parseDuration(options.relayPollEvery ?? '5s', 'monitor: relayPollEvery');
  if (relayPollMs < 1000) throw new ConfigError(`monitor: relayPollEvery must be at least 1s, got ${relayPollMs}ms`);
  if (options.relays !== undefined && !(Array.isArray(options.relays) && options.relays.every(isRelayStatusProvider))) {
    throw new ConfigError(`monitor: relays: expected an array of relay status providers ({ name, inspect() }, see relayStatusProvider() of baton-fleet/relay), got ${describeValue(options.relays)}`);
  }
  const relays = options.relays && options.relays.length > 0 ? new RelayWatch(options.relays, { clock, log, everyMs: relayPollMs }) : undefined;
  const ownsStore = typeof options.store === 'string';
  const store = typeof options.store === 'string' ? await openStore(options.store, { cluster: options.cluster ?? 'default', ...(options.clock ? { clock } : {}) }) : options.store;
  if (options.tokenLabel !== undefined && !(typeof options.tokenLabel === 'string' && /^[\w.@:-]{1,64}$/.test(options.tokenLabel))) {
    throw new ConfigError(`monitor: tokenLabel: expected 1–64 letters, digits, '_', '.', '@', ':' or '-', got ${describeValue(options.tokenLabel)}`);
  }
  const monitor = new MonitorProcess({ store, ownsStore, clock, log, pollMs, thresholds, webhook, timing, token, relays, tokenLabel: options.tokenLabel });
  try {
    await monitor.start(listen);
  } catch (error) {
    await monitor.close();
    throw error;
  }
  return monitor;
}

interface ProcessOptions {
  readonly store: Store;
  readonly ownsStore: boolean;
  readonly clock: Clock;
  readonly log: Logger;
  readonly pollMs: number;
  readonly thresholds: ReturnType<typeof parseAlertRules> | null;
  readonly webhook: WebhookOptions | undefined;
  readonly timing: ReturnType<typeof resolveSessionTiming>;
  readonly token: string | null;
  readonly relays: RelayWatch | undefined;
  readonly tokenLabel: string | undefined;
}

class MonitorProcess implements Monitor {
  readonly token: string | null;
  #url: string | undefined;
  readonly #o: ProcessOptions;
  readonly #id = `monitor-${hostname()}-${process.pid}-${randomId(3)}`;
  readonly #keeper: SessionKeeper;
  readonly #metrics: MonitorMetrics;
  readonly #alerter: Alerter | undefined;
  readonly #webhook: WebhookSender | undefined;
  readonly #stop = new AbortController();
  readonly #subscribers = new Set<(item: StreamItem) => void>();
  readonly #buffer: StampedEvent[] = [];
  #seq = 0;
  #latest: Observation | undefined;
  #statusSentAt = -Infinity;
  readonly #deltas = new StatusDeltas();
  readonly #owners = new OwnerLog();
  #api: ApiServer | undefined;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #unwatch: (() => void) | undefined;
  #polling: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: ProcessOptions) {
    this.#o = options;
    this.token = options.token;
    this.#metrics = new MonitorMetrics(options.store.cluster);
    this.#webhook = options.webhook ? new WebhookSender(options.webhook, { clock: options.clock, log: options.log }) : undefined;
    this.#alerter = options.thresholds
      ? new Alerter({
          store: options.store,
          thresholds: options.thresholds,
          log: options.log,
          ...(this.#webhook ? { deliver: (d) => this.#webhook?.send(d) } : {}),
        })
      : undefined;
    this.#keeper = new SessionKeeper({
      store: options.store,
      info: this.#info(),
      timing: options.timing,
      clock: options.clock,
      emit: (event, payload) => {
        if (event === 'session:renewed') this.#metrics.renewed((payload as { durationMs: number }).durationMs);
        else if (event === 'session:lost' || event === 'session:renew-failed' || event === 'session:close-failed') options.log.warn({ event, ...payload }, `monitor session: ${event}`);
      },
    });
  }

  get url(): string | undefined {
    return this.#url;
  }

  async start(listen: { host: string; port: number } | null): Promise<void> {
    // The session only elects the alerter: a monitor without alert rules needs none.
    if (this.#alerter) await this.#keeper.start();
    await this.#o.relays?.start();
    await this.refresh();
    if (listen) {
      this.#api = createApiServer(this.#backend(), { token: this.token, log: this.#o.log, clock: this.#o.clock, ...(this.#o.tokenLabel !== undefined ? { tokenLabel: this.#o.tokenLabel } : {}) });
      const server = this.#api.server;
      await new Promise<void>((resolve, reject) => {
        const refused = (error: NodeJS.ErrnoException) => reject(listenError(listen, error));
        server.once('error', refused);
        server.listen(listen.port, listen.host, () => {
          server.off('error', refused);
          resolve();
        });
      });
      const address = server.address() as AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      this.#url = `http://${host}:${address.port}/`;
    }
    this.#unwatch = this.#o.store.watch(() => this.#wake?.());
    this.#loop = this.#run();
  }

  status(): MonitorStatus | undefined {
    const latest = this.#latest;
    return latest ? { ...latest.status, alerts: latest.alerts, relays: latest.relays ?? [] } : undefined;
  }

  on(listener: (event: StampedEvent) => void): () => void {
    const subscriber = (item: StreamItem): void => {
      if (item.kind === 'event') listener(item.event);
    };
    this.#subscribers.add(subscriber);
    return () => this.#subscribers.delete(subscriber);
  }

  metrics(): Promise<{ body: string; contentType: string }> {
    return this.#metrics.render();
  }

  /** One read at a time: a refresh() during a poll waits for it and reads again. */
  refresh(): Promise<void> {
    const previous = this.#polling ?? Promise.resolve();
    const next = previous.then(() => this.#poll());
    this.#polling = next.finally(() => {
      if (this.#polling === next) this.#polling = undefined;
    });
    return next;
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          cancel();
          signal.removeEventListener('abort', done);
          resolve();
        };
        const cancel = this.#o.clock.setTimer(this.#o.pollMs, done);
        // A store hint reads sooner, but not more often than every 50 ms (a busy cluster sends many).
        this.#wake = () => {
          cancel();
          this.#o.clock.setTimer(50, done);
        };
        signal.addEventListener('abort', done, { once: true });
      });
      this.#wake = undefined;
      if (signal.aborted) break;
      try {
        await this.refresh();
      } catch (error) {
        this.#metrics.pollFailed();
        this.#o.log.warn({ err: toError(error) }, 'monitor: reading the status failed; retrying');
        await sleep(this.#o.clock, this.#o.pollMs, signal).catch(() => undefined);
      }
    }
  }

  async #poll(): Promise<void> {
    const { store, clock } = this.#o;
    const started = clock.monotonic();
    const runsPerUnit = Math.max(10, (this.#o.thresholds?.consecutiveFailures ?? 0) + 5);
    const [{ status, recentRuns }, alerts, actions] = await Promise.all([readStatusWithRuns(store, { runsPerUnit }), readActiveAlerts(store), recentActions(store, ACTIONS_READ)]);
    const read: Observation = { status, recentRuns, alerts, actions, relays: this.#o.relays?.views ?? [] };
    const previous = this.#latest;
    const decided = this.#alerter ? await this.#alerter.observe(read, previous, this.#keeper.current?.id) : alerts;
    const observation: Observation = { ...read, alerts: decided };
    // Owner changes carry their kind (failover, handover, …) and measured gap, and are kept for /api/owners.
    const events = changesBetween(previous, observation).map((event) =>
      event.type === 'owner:changed' ? { ...event, ...ownerInfo(this.#owners.record(event, status)) } : event,
    );
    this.#owners.observe(status);
    this.#latest = observation;
    this.#metrics.observe(observation, events, (clock.monotonic() - started) / 1000, this.#alerter?.deciding ?? false);
    for (const event of events) this.#publish({ kind: 'event', event: this.#stamp(event, status.at) });
    this.#sendDelta();
  }

  #stamp(event: MonitorEvent, at: number): StampedEvent {
    const stamped = { ...event, seq: ++this.#seq, at } as StampedEvent;
    this.#buffer.push(stamped);
    if (this.#buffer.length > EVENT_BUFFER) this.#buffer.shift();
    return stamped;
  }

  /**
   * Sends streams what changed in the status (their first snapshot came on connect): the changed rows only,
   * and a delta of just the time every STATUS_REFRESH_MS while nothing else changes.
   */
  #sendDelta(): void {
    const status = this.status();
    if (!status) return;
    const delta = this.#deltas.next(status);
    const now = this.#o.clock.monotonic();
    if (!hasChanges(delta) && now - this.#statusSentAt < STATUS_REFRESH_MS) return;
    this.#statusSentAt = now;
    this.#publish({ kind: 'delta', delta });
  }

  #publish(item: StreamItem): void {
    for (const subscriber of this.#subscribers) subscriber(item);
  }

  #backend() {
    return {
      status: () => this.status(),
      runs: (query: RunsQuery) => this.#runs(query),
      subscribe: (listener: (item: StreamItem) => void, afterSeq?: number) => {
        if (afterSeq !== undefined) for (const event of this.#buffer) if (event.seq > afterSeq) listener({ kind: 'event', event });
        this.#subscribers.add(listener);
        return () => {
          this.#subscribers.delete(listener);
        };
      },
      metrics: () => this.metrics(),
      control: (request: ControlRequest) => this.#control(request),
      run: (id: string) => readRun(this.#o.store, id),
      recentEvents: (limit: number) => this.#buffer.slice(-limit),
      ownerChanges: (query: OwnerChangeQuery) => this.#owners.changes(query),
    };
  }

  /**
   * A unit's or a task's history read from the store, paged and filtered; without either, the newest
   * runs the last snapshot holds of every unit (filtered, one page: the store is not read for them).
   */
  async #runs(query: RunsQuery): Promise<RunHistoryPage> {
    const { task, unit, limit, ...filters } = query;
    if (task === undefined && unit === undefined) {
      const recent = [...(this.#latest?.recentRuns.values() ?? [])].flat();
      const runs = filterRuns(recent, filters).sort((a, b) => b.tick - a.tick).slice(0, limit);
      return { runs: runs.map((run) => ({ ...run, id: runIdOf(run) })) };
    }
    const known = this.#latest?.status.tasks.filter((t) => t.task === task).map((t) => t.unit);
    const units = unit !== undefined ? [unit] : known && known.length > 0 ? known : [soleUnit(task as TaskName)];
    return readRunHistory(this.#o.store, { units, limit, ...filters });
  }

  async #control(request: ControlRequest): Promise<{ trigger?: string }> {
    const { store, clock } = this.#o;
    const { action, task, actor } = request;
    assertTaskName(task);
    const trigger = await sendControl(store, action, task, { node: this.#id, now: clock.now(), actor });
    this.#o.log.info({ task, action, by: actor.by, address: actor.address, ...(trigger ? { trigger } : {}) }, `monitor: ${action} of task over the API`);
    // Read at once, so the action's event (and a pause's flag) reaches the streams before the answer.
    await this.refresh().catch((error: unknown) => this.#o.log.warn({ err: toError(error) }, 'monitor: reading the status after an action failed; the poll retries'));
    return trigger ? { trigger } : {};
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#stop.abort(new ClosedError('monitor: closing'));
    this.#unwatch?.();
    await this.#loop;
    await this.#polling?.catch(() => undefined);
    await this.#o.relays?.close();
    const api = this.#api;
    if (api) {
      api.endStreams();
      await new Promise<void>((resolve) => api.server.close(() => resolve()));
      api.server.closeAllConnections();
    }
    try {
      await this.#alerter?.release().catch((error: unknown) => this.#o.log.warn({ err: toError(error) }, 'monitor: releasing the alerter key failed; it frees with the session'));
      if (this.#alerter) await this.#keeper.close();
      await this.#webhook?.close();
    } finally {
      if (this.#o.ownsStore) await this.#o.store.close();
    }
  }

  #info(): NodeInfo {
    return {
      id: this.#id,
      host: hostname(),
      pid: process.pid,
      version: BATON_VERSION,
      labels: {},
      startedAt: this.#o.clock.now(),
      process: currentProcessIdentity(),
      tasks: {},
      role: 'monitor',
    };
  }
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/;

/** `host:port`, `[v6]:port` or `:port` (loopback). */
export function parseListen(value: unknown): { host: string; port: number } {
  if (typeof value !== 'string') throw new ConfigError(`monitor: listen: expected "host:port", got ${describeValue(value)}`);
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new ConfigError(`monitor: listen: expected "host:port" (e.g. 127.0.0.1:7070, [::1]:7070), got ${JSON.stringify(value)}`);
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port };
}

export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}

function resolveToken(token: string | false | undefined, listen: { host: string } | null): string | null {
  if (token === false) {
    if (listen && !isLoopback(listen.host)) {
      throw new ConfigError(`monitor: refusing to serve ${listen.host} without a token: only loopback addresses may disable it (set a token, or listen on 127.0.0.1)`);
    }
    return null;
  }
  if (token === undefined) return randomBytes(24).toString('base64url');
  if (typeof token !== 'string' || token.length < MIN_TOKEN_LENGTH) {
    throw new ConfigError(`monitor: token: expected at least ${MIN_TOKEN_LENGTH} characters, got ${typeof token === 'string' ? `${token.length}` : describeValue(token)}`);
  }
  return token;
}

/** Why the HTTP server could not listen, in one line that names the address (the cause keeps the stack). */
function listenError(listen: { host: string; port: number }, error: NodeJS.ErrnoException): BatonError {
  const address = listen.host.includes(':') ? `[${listen.host}]:${listen.port}` : `${listen.host}:${listen.port}`;
  const why =
    error.code === 'EADDRINUSE'
      ? 'the address is already in use (another monitor?); choose another port'
      : error.code === 'EACCES'
        ? 'permission denied (ports below 1024 need privileges); choose another port'
        : error.code === 'EADDRNOTAVAIL'
          ? 'this host has no such address'
          : error.message;
  return new BatonError('LISTEN_FAILED', `monitor: cannot listen on ${address}: ${why}`, { cause: error });
}
