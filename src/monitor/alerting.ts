/**
 * Alerts are decided by one monitor at a time — the one holding `monitor/alerter` with its session — and
 * written to one fenced record, `monitor/alerts`, that every monitor reads: so an alert is raised once
 * and resolved once whatever the number of monitors, and survives the hand-over to another monitor.
 * Only the deciding monitor sends webhooks and logs the alerts.
 */
import type { Logger } from '../core/logger.js';
import type { Store } from '../stores/contract.js';
import { AlertMemory, conditionsOf, type AlertThresholds } from './alert-rules.js';
import type { Observation } from './changes.js';
import type { Alert } from './monitor-events.js';
import type { AlertDelivery } from './webhook.js';

/** Ownership key of the deciding monitor. */
export const ALERTER_KEY = 'monitor/alerter';
/** The active alerts, as decided last. */
export const ALERTS_KEY = 'monitor/alerts';

interface AlertsRecord {
  readonly alerts: readonly Alert[];
}

/** Reads the active alerts (what every monitor shows). */
export async function readActiveAlerts(store: Store): Promise<Alert[]> {
  return [...((await store.get<AlertsRecord>(ALERTS_KEY))?.value.alerts ?? [])];
}

export interface AlerterOptions {
  readonly store: Store;
  readonly thresholds: AlertThresholds;
  readonly log: Logger;
  /** Where raised and resolved alerts go besides the log (a webhook). */
  readonly deliver?: (delivery: AlertDelivery) => void;
}

export class Alerter {
  readonly memory = new AlertMemory();
  readonly #options: AlerterOptions;
  #token: bigint | undefined;
  /** The session that holds the key with #token. */
  #sessionId: string | undefined;

  constructor(options: AlerterOptions) {
    this.#options = options;
  }

  /** True while this monitor decides the alerts. */
  get deciding(): boolean {
    return this.#token !== undefined;
  }

  /**
   * Takes in an observation (every monitor does: a monitor elected later starts with a warm memory) and,
   * when `sessionId` holds or wins the alerter key, decides the alerts. Returns the active alerts.
   */
  async observe(observation: Observation, previous: Observation | undefined, sessionId: string | undefined): Promise<readonly Alert[]> {
    const { store, thresholds } = this.#options;
    this.memory.observe(observation, previous, thresholds);
    if (sessionId === undefined) {
      this.#token = undefined;
      return observation.alerts;
    }
    // The key stays ours as long as the session that took it lives: ask the store again only for a new session.
    if (this.#token === undefined || this.#sessionId !== sessionId) {
      const acquired = await store.tryAcquire(ALERTER_KEY, sessionId);
      this.#token = acquired.acquired ? acquired.token : undefined;
      this.#sessionId = sessionId;
    }
    const token = this.#token;
    if (token === undefined) return observation.alerts;
    const at = observation.status.at;
    const active = new Map(observation.alerts.map((a) => [a.id, a]));
    const next: Alert[] = conditionsOf(observation, this.memory, thresholds).map((c) => {
      const id = `${c.rule}:${c.subject}`;
      return { id, rule: c.rule, subject: c.subject, message: c.message, since: active.get(id)?.since ?? at };
    });
    const nextIds = new Set(next.map((a) => a.id));
    const raised = next.filter((a) => !active.has(a.id));
    const resolved = [...active.values()].filter((a) => !nextIds.has(a.id)).map((a) => ({ ...a, resolvedAt: at }));
    if (raised.length === 0 && resolved.length === 0) return observation.alerts;
    const write = await store.put(ALERTS_KEY, { alerts: next } satisfies AlertsRecord, { guard: { key: ALERTER_KEY, token } });
    if (!write.ok) {
      // Another monitor took over between the acquisition and the write: it decides from now on.
      this.#token = undefined;
      return observation.alerts;
    }
    for (const alert of raised) this.#announce('firing', alert, store.cluster);
    for (const alert of resolved) this.#announce('resolved', alert, store.cluster);
    return next;
  }

  /** Gives the alerter key up (on close) so another monitor decides at once. */
  async release(): Promise<void> {
    const token = this.#token;
    this.#token = undefined;
    if (token !== undefined) await this.#options.store.release(ALERTER_KEY, token);
  }

  #announce(status: AlertDelivery['status'], alert: Alert, cluster: string): void {
    const fields = { alert: alert.id, rule: alert.rule, subject: alert.subject, since: alert.since };
    if (status === 'firing') this.#options.log.warn(fields, `alert firing: ${alert.message}`);
    else this.#options.log.info(fields, `alert resolved: ${alert.message}`);
    this.#options.deliver?.({ status, alert, cluster });
  }
}
