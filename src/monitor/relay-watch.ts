/**
 * The relays a monitor watches: every `pollEvery` it asks each {@link RelayStatusProvider} for a view of
 * its relay topology (outbox depth and lag, held and parked changes, queue, dead-letter and unroutable
 * depths) and keeps the latest one for the status, the metrics, the dashboard and the alert rules.
 *
 * The monitor never imports the relay: the relay offers a provider (`relayStatusProvider()` of
 * `baton-fleet/relay`) whose answers have the shape declared here, and whoever starts the monitor (the CLI's
 * `baton serve --relay`, or an application) hands it in. So the relay module and amqplib are loaded only
 * where a relay is watched.
 *
 * Separate from the store poll on purpose: an inspection opens a connection to every node's database and
 * to the broker, which is too much to do every 500 ms, and a slow or unreachable relay database must not
 * delay the cluster's status.
 */
import { sleep, type Clock } from '../core/clock.js';
import { toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';

/** One relay node as seen from outside: depths from its database and its queues. Nulls: not readable. */
export interface RelayNodeStatus {
  readonly node: string;
  readonly level: string;
  readonly outboxDepth: number | null;
  /** Now minus the creation of the oldest outbox row: how far publishing is behind (0 when empty). */
  readonly outboxLagMs: number | null;
  readonly heldDepth: number | null;
  readonly parkedDepth: number | null;
  /** Ready messages in the node's partition queues. */
  readonly queueDepth: number | null;
  /** What could not be read, if anything. */
  readonly error: string | null;
}

/** One relay topology as seen from outside. */
export interface RelayStatus {
  readonly nodes: readonly RelayNodeStatus[];
  readonly deadLetterDepth: number | null;
  readonly unroutableDepth: number | null;
  readonly brokerError: string | null;
}

/**
 * What the monitor needs of a watched relay. `inspect()` is called once per `relayPollEvery`, never
 * twice at once, and should not reject (a rejection is logged and the previous view kept).
 */
export interface RelayStatusProvider {
  /** The topology's name: the `relay` label of the metrics and alerts. */
  readonly name: string;
  inspect(): Promise<RelayStatus>;
}

/** One relay topology as the monitor last saw it. */
export interface RelayView extends RelayStatus {
  /** The topology's name. */
  readonly relay: string;
  /** Wall time of the inspection, ms since the epoch. */
  readonly at: number;
}

export class RelayWatch {
  readonly #providers: readonly RelayStatusProvider[];
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #everyMs: number;
  readonly #stop = new AbortController();
  #views: readonly RelayView[] = [];
  #loop: Promise<void> | undefined;

  constructor(providers: readonly RelayStatusProvider[], options: { clock: Clock; log: Logger; everyMs: number }) {
    this.#providers = providers;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#everyMs = options.everyMs;
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

  /** Inspects every relay now. */
  async refresh(): Promise<void> {
    this.#views = await Promise.all(
      this.#providers.map(async (provider) => ({ relay: provider.name, at: this.#clock.now(), ...(await provider.inspect()) })),
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

/** Checks the `relays` option of a monitor: providers, each with a name and an inspect function. */
export function isRelayStatusProvider(value: unknown): value is RelayStatusProvider {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as RelayStatusProvider).name === 'string' &&
    typeof (value as RelayStatusProvider).inspect === 'function'
  );
}
