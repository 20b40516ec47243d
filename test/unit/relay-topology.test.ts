import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { defineTopology, nodesOf, topicMatches, type TopologyConfig } from '../../src/relay/topology.js';
import { parseTopology } from '../../src/relay/config-file.js';

const statements = { put: { params: { k: 'string' }, sql: 'INSERT INTO t (k) VALUES ($1)' } } as const;
const db = (name: string) => `postgres://postgres@127.0.0.1/${name}`;

function config(overrides: Partial<TopologyConfig> = {}): TopologyConfig {
  return {
    name: 'shop',
    levels: [
      { name: 'A', nodes: [{ id: 'a1', database: db('a1') }] },
      { name: 'B', nodes: [{ id: 'b1', database: db('b1'), keys: ['eu.#'], peers: ['b2'] }, { id: 'b2', database: 'mysql://root@127.0.0.1/b2', keys: ['eu.#'] }] },
      { name: 'C', nodes: [{ id: 'c1', database: db('c1') }, { id: 'c2', database: db('c2'), keys: ['us.#'] }] },
    ],
    statements,
    ...overrides,
  };
}

function error(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('relay topology', () => {
  it('routes a change down the levels by routing key as a spanning tree', () => {
    const t = defineTopology(config());
    expect(t.routeFrom('a1', 'eu.orders')).toEqual({ b1: { c1: {} }, b2: {} });
    // c2 accepts only us.*, and no B node accepts us.*: the route stops at A.
    expect(t.routeFrom('a1', 'us.orders')).toEqual({});
    // From a B node: its peer, then the next level.
    expect(t.routeFrom('b2', 'eu.x')).toEqual({ b1: {}, c1: {} });
    expect(t.node('b2').peers).toEqual(['b1']); // peers are symmetric
    expect(t.node('b2').dialect).toBe('mysql');
  });

  it('has no loop whatever cycles the configuration has: each node once, never the origin', () => {
    const ring = defineTopology({
      name: 'ring',
      levels: [
        { name: 'A', next: ['B'], nodes: [{ id: 'a1', database: db('a1'), peers: ['a2'] }, { id: 'a2', database: db('a2'), peers: ['a3'] }, { id: 'a3', database: db('a3'), peers: ['a1'] }] },
        { name: 'B', next: ['A'], nodes: [{ id: 'b1', database: db('b1') }] },
      ],
      statements,
    });
    for (const origin of ['a1', 'a2', 'a3', 'b1']) {
      const reached = nodesOf(ring.routeFrom(origin, 'x'));
      expect(new Set(reached).size).toBe(reached.length);
      expect(reached).not.toContain(origin);
      expect(reached.sort()).toEqual(['a1', 'a2', 'a3', 'b1'].filter((n) => n !== origin));
    }
  });

  it('maps a key to one partition, the same every time', () => {
    const t = defineTopology(config({ partitions: 8 }));
    const parts = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const p = t.partitionOf(`key-${i}`);
      expect(p).toBe(t.partitionOf(`key-${i}`));
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThan(8);
      parts.add(p);
    }
    expect(parts.size).toBe(8);
  });

  it('matches routing keys as AMQP topics', () => {
    expect(topicMatches('#', 'a.b')).toBe(true);
    expect(topicMatches('eu.#', 'eu')).toBe(true);
    expect(topicMatches('eu.#', 'eu.fr.paris')).toBe(true);
    expect(topicMatches('eu.*', 'eu.fr.paris')).toBe(false);
    expect(topicMatches('*.orders', 'eu.orders')).toBe(true);
    expect(topicMatches('*.orders', 'orders')).toBe(false);
    expect(topicMatches('#.paris', 'eu.fr.paris')).toBe(true);
  });

  it('names the field path of every error', () => {
    expect(error(() => defineTopology(null)).message).toMatch(/^topology: must be an object/);
    expect(error(() => defineTopology({ ...config(), name: 'a.b' })).message).toMatch(/^topology\.name:/);
    expect(error(() => defineTopology({ ...config(), extra: 1 })).message).toMatch(/unknown field "extra"/);
    expect(error(() => defineTopology(config({ partitions: 0 }))).message).toMatch(/^topology\.partitions:/);
    const bad = (mutate: (c: { levels: { name: string; nodes: Record<string, unknown>[]; next?: unknown }[] }) => void) => {
      const c = structuredClone(config()) as unknown as { levels: { name: string; nodes: Record<string, unknown>[] }[] };
      mutate(c);
      return error(() => defineTopology(c)).message;
    };
    expect(bad((c) => (c.levels[1]!.nodes[0]!.database = 'redis://x'))).toMatch(/^topology\.levels\[1\]\.nodes\[0\]\.database:/);
    expect(bad((c) => (c.levels[1]!.nodes[0]!.peers = ['zz']))).toMatch(/^topology\.levels\[1\]\.nodes\[0\]\.peers\[0\]: no node "zz"/);
    expect(bad((c) => (c.levels[1]!.nodes[0]!.peers = ['c1']))).toMatch(/peers share a level/);
    expect(bad((c) => (c.levels[2]!.nodes[0]!.id = 'a1'))).toMatch(/^topology\.levels\[2\]\.nodes\[0\]\.id: node "a1" is already defined at topology\.levels\[0\]\.nodes\[0\]/);
    expect(bad((c) => (c.levels[0]!.nodes[0]!.keys = ['eu..x']))).toMatch(/^topology\.levels\[0\]\.nodes\[0\]\.keys\[0\]:/);
    expect(bad((c) => (c.levels[0]!.next = ['Z']))).toMatch(/^topology\.levels\[0\]\.next\[0\]: no level "Z"/);
    expect(bad((c) => (c.levels[1]!.name = 'A'))).toMatch(/^topology\.levels\[1\]\.name: level "A" is defined twice/);
    expect(error(() => defineTopology(config({ queues: { deliveryLimit: 1 } }))).message).toMatch(/^topology\.queues\.deliveryLimit:/);
    expect(error(() => defineTopology(config({ statements: {} }))).message).toMatch(/^topology\.statements: at least one/);
    expect(error(() => defineTopology(config()).node('zz')).message).toMatch(/no node "zz"/);
    expect(error(() => defineTopology(config()).routeFrom('a1', 'bad..key')).message).toMatch(/routingKey/);
  });

  it('reads YAML', async () => {
    const t = await parseTopology(`
name: shop
partitions: 2
levels:
  - name: A
    nodes: [{ id: a1, database: "postgres://u:secret@h/a" }]
  - name: B
    nodes: [{ id: b1, database: "mariadb://root@h/b" }]
statements:
  put:
    params: { k: string, n: integer }
    postgres: INSERT INTO t (k, n) VALUES ($1, $2)
    mysql: INSERT INTO t (k, n) VALUES (?, ?)
`);
    expect(t.routeFrom('a1', 'x')).toEqual({ b1: {} });
    await expect(parseTopology('name: [')).rejects.toThrow(/not valid YAML/);
    // The password of a bad URL is not echoed.
    await expect(parseTopology('name: x\nlevels: [{ name: A, nodes: [{ id: a, database: "redis://u:secret@h" }] }]\nstatements: { p: { sql: x } }')).rejects.toThrow(/u:\*\*\*@h/);
  });
});

describe('the topology of docs/relay.md', () => {
  it('routes as the diagrams there show', async () => {
    const { readFileSync } = await import('node:fs');
    const doc = readFileSync(new URL('../../docs/relay.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
    const t = await parseTopology(yaml as string);
    expect(t.routeFrom('hq1', 'eu.prices')).toEqual({ eu1: { paris: {} }, eu2: {} });
    expect(t.routeFrom('eu2', 'eu.prices')).toEqual({ eu1: {}, paris: {} });
    expect(t.routeFrom('hq1', 'us.prices')).toEqual({ us1: {} });
  });
});
