/**
 * The relays a monitor watches: every `pollEvery` it inspects each configured relay topology from outside
 * (sync/relay/inspect.ts: outbox depth and lag, held and parked changes from each node's database; queue,
 * dead-letter and unroutable depths from the broker) and keeps the latest view for the status, the metrics,
 * the dashboard and the alert rules.
 *
 * Separate from the store poll on purpose: an inspection opens a connection to every node's database and
 * to the broker, which is too much to do every 500 ms, and a slow or unreachable relay database must not
 * delay the cluster's status. The relay module (and amqplib) is loaded only when a relay is configured.
 */
import { sleep, type Clock } from '../core/clock.js';
import { toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { RelayInspection, TopologyInspection } from '../sync/relay/inspect.js';
import type { Topology } from '../sync/relay/topology.js';

/** A relay to watch: its topology (or the path of its file, as `baton relay --config` takes) and broker. */
export interface WatchedRelay {
  readonly topology: Topology | string;
  /** Default `BATON_RELAY_AMQP`, else `amqp://guest:guest@127.0.0.1:5672`. */
  readonly amqpUrl?: string;
}

/** One relay topology as the monitor last saw it. */
export interface RelayView extends TopologyInspection {
  /** The topology's name. */
  readonly relay: string;
  /** Wall time of the inspection, ms since the epoch. */
  readonly at: number;
  readonly nodes: readonly RelayInspection[];
}

interface Resolved {
  readonly topology: Topology;
  readonly amqpUrl: string;
}

export class RelayWatch {
  readonly #relays: readonly Resolved[];
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #everyMs: number;
  readonly #stop = new AbortController();
  #views: readonly RelayView[] = [];
  #loop: Promise<void> | undefined;

  private constructor(relays: readonly Resolved[], options: { clock: Clock; log: Logger; everyMs: number }) {
    this.#relays = relays;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#everyMs = options.everyMs;
  }

  /** Loads the topologies (files are read and validated now). @throws ConfigError. */
  static async create(relays: readonly WatchedRelay[], options: { clock: Clock; log: Logger; everyMs: number; env?: NodeJS.ProcessEnv }): Promise<RelayWatch> {
    const { loadTopologyFile } = await import('../sync/relay/config-file.js');
    const env = options.env ?? process.env;
    const resolved: Resolved[] = [];
    for (const relay of relays) {
      resolved.push({
        topology: typeof relay.topology === 'string' ? await loadTopologyFile(relay.topology) : relay.topology,
        amqpUrl: relay.amqpUrl ?? env.BATON_RELAY_AMQP ?? 'amqp://guest:guest@127.0.0.1:5672',
      });
    }
    return new RelayWatch(resolved, options);
  }

  /** The latest view of every relay (empty until the first inspection ended). */
  get views(): readonly RelayView[] {
    return this.#views;
  }

  /** Inspects once now, then every `everyMs` until {@link close}. */
  async start(): Promise<void> {
    await this.refresh();
    this.#loop = this.#run();
  }

  /** Inspects every relay now. Never rejects: what cannot be read shows as nulls and an error in the view. */
  async refresh(): Promise<void> {
    const { inspectRelay } = await import('../sync/relay/inspect.js');
    this.#views = await Promise.all(
      this.#relays.map(async ({ topology, amqpUrl }) => ({
        relay: topology.name,
        at: this.#clock.now(),
        ...(await inspectRelay({ topology, amqpUrl, clock: this.#clock })),
      })),
    );
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      await sleep(this.#clock, this.#everyMs, signal).catch(() => undefined);
      if (signal.aborted) break;
      try {
        await this.refresh();
      } catch (error) {
        this.#log.warn({ err: toError(error) }, 'monitor: inspecting the relays failed; retrying');
      }
    }
  }

  /** Stops inspecting; resolves when an inspection in progress has ended. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }
}
