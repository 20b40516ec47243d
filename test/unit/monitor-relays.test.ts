/**
 * The relay side of the monitor, as pure functions of what an inspection shows: the `relay-*` alert rules
 * (backlog, dead letters, unreadable for a while), their metrics, and the RELAYS section of `baton status`.
 */
import { describe, expect, it } from 'vitest';
import { formatStatus } from '../../src/cli/format-status.js';
import { AlertMemory, conditionsOf, parseAlertRules } from '../../src/monitor/alert-rules.js';
import type { Observation } from '../../src/monitor/changes.js';
import { MonitorMetrics } from '../../src/monitor/metrics.js';
import type { RelayView } from '../../src/monitor/relay-watch.js';
import type { RelayInspection } from '../../src/relay/inspect.js';

const T0 = Date.UTC(2026, 11, 6, 6, 0, 0);

function node(id: string, over: Partial<RelayInspection> = {}): RelayInspection {
  return { node: id, level: id.slice(0, 1), outboxDepth: 0, outboxLagMs: 0, heldDepth: 0, parkedDepth: 0, queueDepth: 0, error: null, ...over };
}

function observe(at: number, view: Omit<RelayView, 'at' | 'relay'>): Observation {
  return {
    status: { cluster: 'c', store: 'memory', at, nodes: [], tasks: [], locks: [], monitors: [] },
    recentRuns: new Map(),
    alerts: [],
    relays: [{ relay: 'shop', at, ...view }],
  };
}

const healthy = { nodes: [node('a1'), node('b1')], deadLetterDepth: 0, unroutableDepth: 0, brokerError: null };

describe('relay alert rules', () => {
  const thresholds = parseAlertRules({}, 'alerts');

  it('holds for a healthy relay: no condition', () => {
    const memory = new AlertMemory();
    const observation = observe(T0, healthy);
    memory.observe(observation, undefined, thresholds);
    expect(conditionsOf(observation, memory, thresholds)).toEqual([]);
  });

  it('raises a backlog past 1 minute of outbox lag, and dead letters as soon as there is one', () => {
    const memory = new AlertMemory();
    const observation = observe(T0, {
      ...healthy,
      nodes: [node('a1', { outboxDepth: 1200, outboxLagMs: 61_000 }), node('b1', { outboxDepth: 5, outboxLagMs: 59_000 })],
      deadLetterDepth: 2,
    });
    memory.observe(observation, undefined, thresholds);
    const found = conditionsOf(observation, memory, thresholds);
    expect(found.map((c) => `${c.rule}:${c.subject}`).sort()).toEqual(['relay-backlog:shop/a1', 'relay-dead-letters:shop']);
    expect(found.find((c) => c.rule === 'relay-backlog')?.message).toContain('1200 change(s) wait in the outbox, the oldest for 61s');
  });

  it('raises an unreadable database or broker only after it stayed unreadable for 30 s, and forgets it once read', () => {
    const memory = new AlertMemory();
    const down = { ...healthy, nodes: [node('a1'), node('b1', { outboxDepth: null, outboxLagMs: null, error: 'connect ECONNREFUSED 127.0.0.1:5432' })], deadLetterDepth: null, brokerError: 'broker gone' };
    let previous: Observation | undefined;
    const at = (ms: number, view: Omit<RelayView, 'at' | 'relay'>) => {
      const observation = observe(T0 + ms, view);
      memory.observe(observation, previous, thresholds);
      previous = observation;
      return conditionsOf(observation, memory, thresholds).map((c) => `${c.rule}:${c.subject}`).sort();
    };
    expect(at(0, down)).toEqual([]);
    expect(at(29_000, down)).toEqual([]);
    expect(at(30_000, down)).toEqual(['relay-unreachable:shop', 'relay-unreachable:shop/b1']);
    expect(at(35_000, healthy)).toEqual([]);
    expect(at(36_000, down)).toEqual([]); // a new outage counts from its own start
  });

  it('each relay rule can be turned off, and a bad value names its field', () => {
    const off = parseAlertRules({ relayBacklog: false, relayDeadLetters: false, relayUnreachable: false }, 'alerts');
    const memory = new AlertMemory();
    const observation = observe(T0, { ...healthy, nodes: [node('a1', { outboxLagMs: 3_600_000, outboxDepth: 9 })], deadLetterDepth: 7 });
    memory.observe(observation, undefined, off);
    expect(conditionsOf(observation, memory, off)).toEqual([]);
    expect(() => parseAlertRules({ relayDeadLetters: 'yes' as never }, 'alerts')).toThrow(/alerts\.relayDeadLetters: expected true or false/);
    expect(() => parseAlertRules({ relayBacklog: 'soon' }, 'alerts')).toThrow(/alerts\.relayBacklog/);
  });
});

describe('relay metrics and status', () => {
  it('exports depths and the outbox lag in seconds per relay node, and leaves out what could not be read', async () => {
    const metrics = new MonitorMetrics('c');
    const observation = observe(T0, {
      nodes: [node('a1', { outboxDepth: 40, outboxLagMs: 2500, parkedDepth: 1 }), node('b1', { outboxDepth: null, outboxLagMs: null, error: 'down' })],
      deadLetterDepth: 3,
      unroutableDepth: 0,
      brokerError: null,
    });
    metrics.observe(observation, [], 0.01, false);
    const { body } = await metrics.render();
    expect(body).toContain('baton_relay_outbox_depth{relay="shop",node="a1",cluster="c"} 40');
    expect(body).toContain('baton_relay_outbox_lag_seconds{relay="shop",node="a1",cluster="c"} 2.5');
    expect(body).toContain('baton_relay_parked_depth{relay="shop",node="a1",cluster="c"} 1');
    expect(body).toContain('baton_relay_dead_letter_depth{relay="shop",cluster="c"} 3');
    expect(body).not.toMatch(/baton_relay_outbox_depth\{relay="shop",node="b1"/);
  });

  it('baton status shows a RELAYS section with each node, its backlog age and the unreadable ones', () => {
    const { status, relays } = observe(T0, {
      nodes: [node('a1', { outboxDepth: 40, outboxLagMs: 2500 }), node('b1', { outboxDepth: null, outboxLagMs: null, error: 'connect ECONNREFUSED' })],
      deadLetterDepth: 3,
      unroutableDepth: 0,
      brokerError: null,
    });
    const text = formatStatus({ ...status, relays: relays ?? [] }, { color: false });
    const lines = text.split('\n');
    expect(lines).toContain('RELAYS');
    expect(lines.find((l) => l.includes('shop/a1'))).toMatch(/shop\/a1\s+a\s+40\s+2\.5s\s+0\s+0\s+0\s+3/);
    expect(lines.find((l) => l.includes('shop/b1'))).toMatch(/shop\/b1\s+b\s+\?\s+\?.*connect ECONNREFUSED/);
  });
});
