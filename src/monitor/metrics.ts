/**
 * Prometheus metrics of a monitor (prom-client, one registry per monitor): gauges from each snapshot,
 * counters and histograms from the events between snapshots. Names follow the Prometheus conventions
 * (base units, `_total` counters); `task` labels are unit names.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MonitorEvent } from './monitor-events.js';
import type { Observation } from './changes.js';
import type { RunRecord } from '../scheduler/task.js';

const LATENESS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const STORE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export class MonitorMetrics {
  readonly registry = new Registry();
  readonly #nodes: Gauge;
  readonly #owned: Gauge<'task' | 'unit'>;
  readonly #paused: Gauge<'task' | 'unit'>;
  readonly #lastSuccess: Gauge<'task' | 'unit'>;
  readonly #runs: Counter<'task' | 'unit' | 'outcome'>;
  readonly #missed: Counter<'task' | 'unit' | 'reason'>;
  readonly #lateness: Histogram<'task' | 'unit'>;
  readonly #duration: Histogram<'task' | 'unit'>;
  readonly #ownerChanges: Counter<'task' | 'unit'>;
  readonly #nodeChanges: Counter<'change'>;
  readonly #alertsActive: Gauge<'rule'>;
  readonly #alertsRaised: Counter<'rule'>;
  readonly #renew: Histogram;
  readonly #poll: Histogram;
  readonly #pollErrors: Counter;
  readonly #deciding: Gauge;
  readonly #relayNode: Record<RelayNodeGauge, Gauge<'relay' | 'node'>>;
  readonly #relayTopology: Record<RelayTopologyGauge, Gauge<'relay'>>;
  /** Runs whose start was counted (lateness is observed once per run, at its first sight). */
  readonly #started = new Set<string>();

  constructor(cluster: string) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ cluster });
    this.#nodes = new Gauge({ name: 'baton_nodes', help: 'Live nodes of the cluster (monitors not counted).', registers });
    this.#owned = new Gauge({ name: 'baton_task_owned', help: '1 when the unit of the task has an owner now, else 0.', labelNames: ['task', 'unit'], registers });
    this.#paused = new Gauge({ name: 'baton_task_paused', help: '1 when the task is paused cluster-wide.', labelNames: ['task', 'unit'], registers });
    this.#lastSuccess = new Gauge({ name: 'baton_task_last_success_timestamp_seconds', help: 'End of the last successful run (seen in the newest records).', labelNames: ['task', 'unit'], registers });
    this.#runs = new Counter({ name: 'baton_task_runs_total', help: 'Runs ended, by outcome (succeeded, failed, timed-out, aborted).', labelNames: ['task', 'unit', 'outcome'], registers });
    this.#missed = new Counter({ name: 'baton_task_missed_ticks_total', help: 'Ticks recorded missed, by reason.', labelNames: ['task', 'unit', 'reason'], registers });
    this.#lateness = new Histogram({ name: 'baton_task_lateness_seconds', help: 'Start of a run after its tick (jitter excluded).', labelNames: ['task', 'unit'], buckets: LATENESS_BUCKETS, registers });
    this.#duration = new Histogram({ name: 'baton_task_run_duration_seconds', help: 'Duration of ended runs.', labelNames: ['task', 'unit'], buckets: DURATION_BUCKETS, registers });
    this.#ownerChanges = new Counter({ name: 'baton_owner_changes_total', help: 'Owner changes of a task (acquired, lost, handed over).', labelNames: ['task', 'unit'], registers });
    this.#nodeChanges = new Counter({ name: 'baton_node_changes_total', help: 'Node sessions opened (joined) and ended (left).', labelNames: ['change'], registers });
    this.#alertsActive = new Gauge({ name: 'baton_alerts_active', help: 'Alerts firing now, by rule.', labelNames: ['rule'], registers });
    this.#alertsRaised = new Counter({ name: 'baton_alerts_raised_total', help: 'Alerts raised, by rule.', labelNames: ['rule'], registers });
    this.#renew = new Histogram({ name: 'baton_session_renew_duration_seconds', help: "Round trip of this monitor's session renewals (the store's latency as nodes see it).", buckets: STORE_BUCKETS, registers });
    this.#poll = new Histogram({ name: 'baton_monitor_poll_duration_seconds', help: 'Time to read one status snapshot from the store.', buckets: STORE_BUCKETS, registers });
    this.#pollErrors = new Counter({ name: 'baton_monitor_poll_errors_total', help: 'Status reads that failed (store unreachable).', registers });
    this.#deciding = new Gauge({ name: 'baton_monitor_deciding', help: '1 while this monitor is the one deciding alerts.', registers });
    // Same names as a relay process's own metrics (relay/command.ts), labelled by topology and node.
    const perNode = (name: string, help: string) => new Gauge({ name, help, labelNames: ['relay', 'node'], registers });
    this.#relayNode = {
      outboxDepth: perNode('baton_relay_outbox_depth', 'Changes waiting in the outbox of a watched relay node.'),
      outboxLagMs: perNode('baton_relay_outbox_lag_seconds', 'Age of the oldest unpublished change of a watched relay node (0 when its outbox is empty).'),
      heldDepth: perNode('baton_relay_held_depth', 'Changes held until an earlier change of their key arrives.'),
      parkedDepth: perNode('baton_relay_parked_depth', 'Changes parked (could not be applied) for an operator.'),
      queueDepth: perNode('baton_relay_queue_depth', 'Ready messages in the node partition queues.'),
    };
    const perTopology = (name: string, help: string) => new Gauge({ name, help, labelNames: ['relay'], registers });
    this.#relayTopology = {
      deadLetterDepth: perTopology('baton_relay_dead_letter_depth', 'Messages in the dead-letter queue of a watched relay.'),
      unroutableDepth: perTopology('baton_relay_unroutable_depth', 'Messages no queue was bound for, kept in the unroutable queue.'),
    };
  }

  observe(observation: Observation, events: readonly MonitorEvent[], pollSeconds: number, deciding: boolean): void {
    const { status, recentRuns } = observation;
    this.#poll.observe(pollSeconds);
    this.#deciding.set(deciding ? 1 : 0);
    this.#nodes.set(status.nodes.length);
    this.#owned.reset();
    this.#paused.reset();
    for (const { task, unit, owner, paused } of status.tasks) {
      this.#owned.set({ task, unit }, owner ? 1 : 0);
      this.#paused.set({ task, unit }, paused ? 1 : 0);
      const success = recentRuns.get(unit)?.find((r) => r.status === 'succeeded');
      if (success?.endedAt !== undefined) this.#lastSuccess.set({ task, unit }, success.endedAt / 1000);
    }
    this.#alertsActive.reset();
    for (const alert of observation.alerts) this.#alertsActive.inc({ rule: alert.rule });
    for (const event of events) this.#count(event);
    this.#observeRelays(observation);
  }

  /** A value that could not be read is left out (its series disappears) rather than reported as 0. */
  #observeRelays(observation: Observation): void {
    for (const gauge of [...Object.values(this.#relayNode), ...Object.values(this.#relayTopology)]) gauge.reset();
    for (const view of observation.relays ?? []) {
      for (const node of view.nodes) {
        for (const [field, gauge] of Object.entries(this.#relayNode) as [RelayNodeGauge, Gauge<'relay' | 'node'>][]) {
          const value = node[field];
          if (value !== null) gauge.set({ relay: view.relay, node: node.node }, field === 'outboxLagMs' ? value / 1000 : value);
        }
      }
      for (const [field, gauge] of Object.entries(this.#relayTopology) as [RelayTopologyGauge, Gauge<'relay'>][]) {
        const value = view[field];
        if (value !== null) gauge.set({ relay: view.relay }, value);
      }
    }
  }

  #count(event: MonitorEvent): void {
    switch (event.type) {
      case 'node:joined':
      case 'node:left':
        this.#nodeChanges.inc({ change: event.type === 'node:joined' ? 'joined' : 'left' });
        break;
      case 'owner:changed':
        this.#ownerChanges.inc({ task: event.task, unit: event.unit });
        break;
      case 'run:started':
        this.#lateOnce(event.run);
        break;
      case 'run:succeeded':
      case 'run:failed':
        this.#lateOnce(event.run);
        this.#started.delete(runKey(event.run));
        this.#runs.inc({ task: event.task, unit: event.unit, outcome: event.run.status });
        if (event.run.durationMs !== undefined) this.#duration.observe({ task: event.task, unit: event.unit }, event.run.durationMs / 1000);
        break;
      case 'tick:missed':
        this.#missed.inc({ task: event.task, unit: event.unit, reason: event.run.missed?.reason ?? 'unknown' }, event.run.missed?.count ?? 1);
        break;
      case 'alert:raised':
        this.#alertsRaised.inc({ rule: event.alert.rule });
        break;
      case 'alert:resolved':
        break;
    }
  }

  #lateOnce(run: RunRecord): void {
    const key = runKey(run);
    if (this.#started.has(key) || run.lateMs === undefined) return;
    // Bounded: a start whose end was never seen (the records moved on between two reads) is forgotten.
    if (this.#started.size >= MAX_TRACKED_STARTS) this.#started.clear();
    if (run.status === 'running') this.#started.add(key);
    this.#lateness.observe({ task: run.task, unit: run.unit }, run.lateMs / 1000);
  }

  renewed(durationMs: number): void {
    this.#renew.observe(durationMs / 1000);
  }

  pollFailed(): void {
    this.#pollErrors.inc();
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}

const MAX_TRACKED_STARTS = 10_000;
type RelayNodeGauge = 'outboxDepth' | 'outboxLagMs' | 'heldDepth' | 'parkedDepth' | 'queueDepth';
type RelayTopologyGauge = 'deadLetterDepth' | 'unroutableDepth';
const runKey = (run: RunRecord): string => `${run.unit}\u0000${run.tick}\u0000${run.triggerId ?? ''}`;
