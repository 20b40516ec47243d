/**
 * The alert rules: which conditions hold in an observation. Pure functions of what the store shows (plus
 * the few things only a watcher over time knows: since when a task has had no owner, when nodes joined),
 * so a monitor elected after another one reaches the same verdicts.
 */
import { describe as describeValue, parseDuration, type Duration } from '../core/duration.js';
import { ConfigError } from '../core/errors.js';
import type { RunRecord } from '../scheduler/task.js';
import type { Observation } from './changes.js';
import type { AlertRule } from './monitor-events.js';

/** Which rules run and their thresholds; `false` turns a rule off. */
export interface AlertRuleOptions {
  /** A task (unit) declared by a live node has had no owner this long. Default `15s`. */
  readonly noOwnerFor?: Duration | false;
  /**
   * Ticks of a task were recorded missed (not paused): the alert stays up this long after the last
   * missed tick, then resolves. Default `1m`. (A miss is a moment, not a state: the next run usually
   * follows at once, so "the newest record is a miss" would flicker past unseen.)
   */
  readonly missedTicks?: Duration | false;
  /** This many runs in a row failed or timed out. Default 3. */
  readonly consecutiveFailures?: number | false;
  /** A run has been going longer than this. Default off. */
  readonly runLongerThan?: Duration | false;
  /** A node id opened this many sessions within `within` (a crash loop, a flaky network). Default 3 in 5 minutes. */
  readonly nodeFlapping?: { readonly joins: number; readonly within: Duration } | false;
  /** A watched relay node's oldest unpublished change (outbox row) is older than this. Default `1m`. */
  readonly relayBacklog?: Duration | false;
  /** A watched relay's dead-letter queue holds messages (each needs an operator). Default on. */
  readonly relayDeadLetters?: boolean;
  /** A watched relay node's database, or its broker, could not be read for this long. Default `30s`. */
  readonly relayUnreachable?: Duration | false;
}

export interface AlertThresholds {
  readonly noOwnerForMs: number | null;
  readonly missedTicksMs: number | null;
  readonly consecutiveFailures: number | null;
  readonly runLongerThanMs: number | null;
  readonly nodeFlapping: { readonly joins: number; readonly withinMs: number } | null;
  readonly relayBacklogMs: number | null;
  readonly relayDeadLetters: boolean;
  readonly relayUnreachableMs: number | null;
}

const RULE_OPTIONS = ['noOwnerFor', 'missedTicks', 'consecutiveFailures', 'runLongerThan', 'nodeFlapping', 'relayBacklog', 'relayDeadLetters', 'relayUnreachable'] as const;

/** Validates rule options; every error names the field. */
export function parseAlertRules(options: AlertRuleOptions | undefined, where = 'alerts'): AlertThresholds {
  const o = (options ?? {}) as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new ConfigError(`${where}: must be an object, got ${describeValue(o)}`);
  for (const key of Object.keys(o)) {
    if (!(RULE_OPTIONS as readonly string[]).includes(key) && key !== 'webhook' && key !== 'evaluateEvery') {
      throw new ConfigError(`${where}.${key}: unknown rule (known: ${RULE_OPTIONS.join(', ')})`);
    }
  }
  const duration = (key: string, fallback: Duration | false): number | null => {
    const value = o[key] === undefined ? fallback : o[key];
    return value === false ? null : parseDuration(value as Duration, `${where}.${key}`);
  };
  const failures = o.consecutiveFailures ?? 3;
  if (failures !== false && (!Number.isInteger(failures) || (failures as number) < 1 || (failures as number) > 100)) {
    throw new ConfigError(`${where}.consecutiveFailures: expected an integer from 1 to 100 or false, got ${describeValue(failures)}`);
  }
  const flapping = o.nodeFlapping ?? { joins: 3, within: '5m' };
  let nodeFlapping: AlertThresholds['nodeFlapping'] = null;
  if (flapping !== false) {
    const f = flapping as { joins?: unknown; within?: unknown };
    if (typeof f !== 'object' || f === null || !Number.isInteger(f.joins) || (f.joins as number) < 2) {
      throw new ConfigError(`${where}.nodeFlapping: expected { joins: integer ≥ 2, within: duration } or false, got ${describeValue(flapping)}`);
    }
    nodeFlapping = { joins: f.joins as number, withinMs: parseDuration(f.within as Duration, `${where}.nodeFlapping.within`) };
  }
  const deadLetters = o.relayDeadLetters ?? true;
  if (typeof deadLetters !== 'boolean') throw new ConfigError(`${where}.relayDeadLetters: expected true or false, got ${describeValue(deadLetters)}`);
  return {
    noOwnerForMs: duration('noOwnerFor', '15s'),
    missedTicksMs: duration('missedTicks', '1m'),
    consecutiveFailures: failures === false ? null : (failures as number),
    runLongerThanMs: duration('runLongerThan', false),
    nodeFlapping,
    relayBacklogMs: duration('relayBacklog', '1m'),
    relayDeadLetters: deadLetters,
    relayUnreachableMs: duration('relayUnreachable', '30s'),
  };
}

/** What only a watcher over time knows. Updated by {@link AlertMemory.observe} with each observation. */
export class AlertMemory {
  /** Unit → store time it was first seen without an owner (while eligible for one). */
  readonly ownerlessSince = new Map<string, number>();
  /** Units declared by a live node at some point: they keep needing an owner when every node is gone. */
  readonly declared = new Set<string>();
  /** Unit → the last tick recorded missed (not paused), with the record. */
  readonly lastMissed = new Map<string, RunRecord>();
  /** Node id → store times its sessions opened (within the flapping window). */
  readonly joins = new Map<string, number[]>();
  /** Relay subject (`relay/node`, or `relay` for its broker) → wall time it was first seen unreadable. */
  readonly relayUnreadableSince = new Map<string, number>();

  observe(observation: Observation, previous: Observation | undefined, thresholds: AlertThresholds): void {
    const { status } = observation;
    for (const task of status.tasks) {
      if (task.declaredBy > 0) this.declared.add(task.unit);
      if (needsOwner(task.mode) && this.declared.has(task.unit) && !task.paused && task.owner === null) {
        if (!this.ownerlessSince.has(task.unit)) this.ownerlessSince.set(task.unit, status.at);
      } else {
        this.ownerlessSince.delete(task.unit);
      }
    }
    for (const [unit, runs] of observation.recentRuns) {
      const missed = runs.find((r) => r.status === 'missed' && r.missed?.reason !== 'paused');
      if (missed && missed.tick > (this.lastMissed.get(unit)?.tick ?? -Infinity)) this.lastMissed.set(unit, missed);
    }
    if (previous) {
      const before = new Set(previous.status.nodes.map((n) => n.sessionId));
      for (const node of status.nodes) {
        if (!before.has(node.sessionId)) this.joins.set(node.id, [...(this.joins.get(node.id) ?? []), status.at]);
      }
    }
    const unreadable = new Map<string, number>();
    for (const view of observation.relays ?? []) {
      const subjects = [...(view.brokerError !== null ? [view.relay] : []), ...view.nodes.filter((n) => n.error !== null).map((n) => `${view.relay}/${n.node}`)];
      for (const subject of subjects) unreadable.set(subject, this.relayUnreadableSince.get(subject) ?? view.at);
    }
    this.relayUnreadableSince.clear();
    for (const [subject, since] of unreadable) this.relayUnreadableSince.set(subject, since);
    const horizon = status.at - (thresholds.nodeFlapping?.withinMs ?? 0);
    for (const [node, times] of this.joins) {
      const recent = times.filter((t) => t > horizon);
      if (recent.length === 0) this.joins.delete(node);
      else this.joins.set(node, recent);
    }
  }
}

/** Turn modes have no owner between ticks by design; a broadcast share lives and dies with its node. */
const needsOwner = (mode: string): boolean => mode !== 'mutex' && mode !== 'round-robin' && mode !== 'broadcast' && mode !== 'unknown';

export interface Condition {
  readonly rule: AlertRule;
  readonly subject: string;
  readonly message: string;
}

const FAILED: ReadonlySet<string> = new Set(['failed', 'timed-out']);

/** Every condition that holds now. */
export function conditionsOf(observation: Observation, memory: AlertMemory, t: AlertThresholds): Condition[] {
  const { status, recentRuns } = observation;
  const at = status.at;
  const found: Condition[] = [];
  for (const task of status.tasks) {
    const subject = task.unit;
    const since = memory.ownerlessSince.get(subject);
    if (t.noOwnerForMs !== null && since !== undefined && at - since >= t.noOwnerForMs) {
      found.push({ rule: 'no-owner', subject, message: `task "${subject}" has had no owner for ${seconds(at - since)} (${task.declaredBy} live node(s) declare it)` });
    }
    const runs = recentRuns.get(subject) ?? [];
    const newest = runs[0];
    const missed = memory.lastMissed.get(subject);
    if (t.missedTicksMs !== null && missed?.missed && at - missed.tick < t.missedTicksMs) {
      const { count, reason } = missed.missed;
      found.push({ rule: 'missed-ticks', subject, message: `task "${subject}" missed ${count} tick(s) up to ${new Date(missed.tick).toISOString()} (${reason})${missed.error ? `: ${missed.error}` : ''}` });
    }
    if (t.consecutiveFailures !== null) {
      const streak = failureStreak(runs);
      if (streak >= t.consecutiveFailures) {
        found.push({ rule: 'consecutive-failures', subject, message: `task "${subject}" failed ${streak} run(s) in a row; last error: ${lastError(runs)}` });
      }
    }
    if (t.runLongerThanMs !== null && newest?.status === 'running' && newest.startedAt !== undefined && at - newest.startedAt > t.runLongerThanMs) {
      found.push({ rule: 'long-run', subject, message: `task "${subject}" has been running for ${seconds(at - newest.startedAt)} on ${newest.host ?? '?'}:${newest.pid ?? '?'}` });
    }
  }
  if (t.nodeFlapping) {
    for (const [node, times] of memory.joins) {
      if (times.length >= t.nodeFlapping.joins) {
        found.push({ rule: 'node-flapping', subject: node, message: `node "${node}" opened ${times.length} sessions within ${seconds(t.nodeFlapping.withinMs)}` });
      }
    }
  }
  found.push(...relayConditions(observation, memory, t));
  return found;
}

function relayConditions(observation: Observation, memory: AlertMemory, t: AlertThresholds): Condition[] {
  const found: Condition[] = [];
  for (const view of observation.relays ?? []) {
    for (const node of view.nodes) {
      const subject = `${view.relay}/${node.node}`;
      if (t.relayBacklogMs !== null && node.outboxLagMs !== null && node.outboxLagMs > t.relayBacklogMs) {
        found.push({ rule: 'relay-backlog', subject, message: `relay node "${subject}": ${node.outboxDepth} change(s) wait in the outbox, the oldest for ${seconds(node.outboxLagMs)} (is its publisher or the broker down?)` });
      }
    }
    if (t.relayDeadLetters && view.deadLetterDepth !== null && view.deadLetterDepth > 0) {
      found.push({ rule: 'relay-dead-letters', subject: view.relay, message: `relay "${view.relay}": ${view.deadLetterDepth} message(s) in the dead-letter queue (docs/relay.md, "Poison messages", says what lands there)` });
    }
    if (t.relayUnreachableMs !== null) {
      for (const [subject, since] of memory.relayUnreadableSince) {
        if (subject !== view.relay && !subject.startsWith(`${view.relay}/`)) continue;
        if (view.at - since < t.relayUnreachableMs) continue;
        const error = subject === view.relay ? view.brokerError : view.nodes.find((n) => `${view.relay}/${n.node}` === subject)?.error;
        found.push({ rule: 'relay-unreachable', subject, message: `relay ${subject === view.relay ? `"${view.relay}": broker` : `node "${subject}": database`} unreadable for ${seconds(view.at - since)}: ${error ?? 'unknown'}` });
      }
    }
  }
  return found;
}

/** Failed or timed-out runs in a row, newest first; missed ranges and aborted runs neither break nor extend it. */
function failureStreak(runs: readonly RunRecord[]): number {
  let streak = 0;
  for (const run of runs) {
    if (run.status === 'missed' || run.status === 'aborted' || run.status === 'running') continue;
    if (!FAILED.has(run.status)) break;
    streak += 1;
  }
  return streak;
}

const lastError = (runs: readonly RunRecord[]): string => runs.find((r) => FAILED.has(r.status))?.error ?? 'unknown';
const seconds = (ms: number): string => `${Math.round(ms / 100) / 10}s`;
