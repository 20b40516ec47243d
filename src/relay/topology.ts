/**
 * The relay topology: levels of nodes, each node a database with a relay in front of it, the routing keys
 * each node accepts, its same-level peers, the number of partitions per node, and the statement registry.
 * Every relay and every application that emits changes loads the same topology.
 *
 * Routing: a change made at node O with routing key R reaches every node reachable from O by two kinds of
 * edges — a node to its peers (same level, edges are symmetric) and a node to the nodes of its level's
 * `next` levels (default: the level that follows it in `levels`) — keeping only nodes whose `keys` match R
 * (AMQP topic patterns: `*` one word, `#` zero or more). The origin computes the route once, as a
 * breadth-first spanning tree of that graph (shortest hop count, ties broken by configuration order), and
 * sends it with the change: each relay forwards to its own children in that tree and nowhere else.
 *
 * Guarantees: the route is a tree, so a change reaches each node on it by exactly one path and never loops,
 * whatever cycles the configuration has (peer rings, levels whose `next` point back); a change never goes
 * to its origin again. Every field is validated at {@link defineTopology}, and an error names its path.
 * Non-guarantees: a node that is not reachable from the origin through matching nodes does not receive the
 * change (a `B` node whose keys do not match cuts off the `C` nodes that only it leads to).
 */
import { ConfigError } from '../core/errors.js';
import { describe } from '../core/duration.js';
import { parseSqlUrl } from '../sql/url.js';
import { StatementRegistry, type DialectKind, type StatementConfig } from './statements.js';

/** The configuration as written (YAML or code). */
export interface TopologyConfig {
  /** Names this relay's exchanges and queues (`baton.relay.<name>.…`): 1–64 letters, digits, `_`, `-`. */
  readonly name: string;
  /** Partitions (queues) per node; a key always maps to the same one. 1–64, default 4. */
  readonly partitions?: number;
  readonly levels: readonly LevelConfig[];
  readonly statements: Readonly<Record<string, StatementConfig>>;
  readonly queues?: QueueConfig;
}

export interface LevelConfig {
  readonly name: string;
  /** Levels a change goes to after this one. Default: the next level in the list (none for the last). */
  readonly next?: readonly string[];
  readonly nodes: readonly NodeConfig[];
}

export interface NodeConfig {
  /** Unique across the topology: 1–64 letters, digits, `_`, `-` (no dots: it is part of routing keys). */
  readonly id: string;
  /** `postgres://…`, `mysql://…` / `mariadb://…` or `sqlite:PATH`. */
  readonly database: string;
  /** Routing-key patterns this node accepts (AMQP topic syntax). Default `['#']`: every change. */
  readonly keys?: readonly string[];
  /** Same-level nodes it exchanges changes with; listing one side is enough (edges are symmetric). */
  readonly peers?: readonly string[];
}

export interface QueueConfig {
  /**
   * Deliveries of one message before the broker dead-letters it (`x-delivery-limit`, quorum queues): a
   * message that makes its relay crash again and again. Default 20; too low dead-letters healthy messages
   * of a relay that restarted several times mid-batch, too high lets a crashing message stall its partition.
   */
  readonly deliveryLimit?: number;
  /** Messages a node's partition queue holds before publishers are refused (`x-max-length`, `reject-publish`); changes then wait in the outbox. Default 1,000,000. */
  readonly maxLength?: number;
}

/** The remaining route of a change: each key is a node to send it to, its value that node's own subtree. */
export interface Route {
  readonly [node: string]: Route;
}

export interface TopologyNode {
  readonly id: string;
  readonly level: string;
  readonly database: string;
  readonly dialect: DialectKind;
  readonly keys: readonly string[];
  readonly peers: readonly string[];
}

export interface Topology {
  readonly name: string;
  readonly partitions: number;
  readonly levels: readonly { readonly name: string; readonly next: readonly string[]; readonly nodes: readonly string[] }[];
  readonly statements: StatementRegistry;
  readonly deliveryLimit: number;
  readonly maxLength: number;
  /** Every node, in configuration order. */
  readonly nodes: readonly TopologyNode[];
  /** @throws ConfigError when there is no such node. */
  node(id: string): TopologyNode;
  /** The route of a change made at `origin` with `routingKey` (see the module comment). Cached. */
  routeFrom(origin: string, routingKey: string): Route;
  /** The partition of an ordering key: FNV-1a of its UTF-8 bytes, modulo `partitions`. */
  partitionOf(key: string): number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const NAME_RULE = '1–64 letters, digits, "_" or "-", starting with a letter or digit';
const ROUTING_WORD = /^[A-Za-z0-9_-]{1,64}$/;
const TOPOLOGY_FIELDS = new Set(['name', 'partitions', 'levels', 'statements', 'queues']);
const LEVEL_FIELDS = new Set(['name', 'next', 'nodes']);
const NODE_FIELDS = new Set(['id', 'database', 'keys', 'peers']);
const QUEUE_FIELDS = new Set(['deliveryLimit', 'maxLength']);
const ROUTE_CACHE_LIMIT = 1024;

/**
 * Validates a topology and returns it ready to use.
 * @throws ConfigError naming the field path (`topology.levels[0].nodes[1].peers[0]: …`).
 */
export function defineTopology(config: unknown): Topology {
  const at = 'topology';
  const root = object(config, at, TOPOLOGY_FIELDS);
  const name = root.name;
  if (typeof name !== 'string' || !NAME.test(name)) throw new ConfigError(`${at}.name: must be ${NAME_RULE}, got ${describe(name)}`);
  const partitions = root.partitions ?? 4;
  if (typeof partitions !== 'number' || !Number.isInteger(partitions) || partitions < 1 || partitions > 64) {
    throw new ConfigError(`${at}.partitions: must be an integer from 1 to 64, got ${describe(partitions)}`);
  }
  const queues = root.queues === undefined ? {} : object(root.queues, `${at}.queues`, QUEUE_FIELDS);
  const deliveryLimit = integerIn(queues.deliveryLimit ?? 20, `${at}.queues.deliveryLimit`, 2, 1000);
  const maxLength = integerIn(queues.maxLength ?? 1_000_000, `${at}.queues.maxLength`, 100, 100_000_000);
  const statements = StatementRegistry.define(root.statements, `${at}.statements`);

  if (!Array.isArray(root.levels) || root.levels.length === 0) throw new ConfigError(`${at}.levels: must be a non-empty list of levels, got ${describe(root.levels)}`);
  const nodes = new Map<string, TopologyNode & { peers: string[] }>();
  const nodePaths = new Map<string, string>();
  const levelNames = new Set<string>();
  const levels: { name: string; nextRaw: unknown; nextPath: string; nodes: string[] }[] = [];
  root.levels.forEach((rawLevel: unknown, i: number) => {
    const lat = `${at}.levels[${i}]`;
    const level = object(rawLevel, lat, LEVEL_FIELDS);
    if (typeof level.name !== 'string' || !NAME.test(level.name)) throw new ConfigError(`${lat}.name: must be ${NAME_RULE}, got ${describe(level.name)}`);
    if (levelNames.has(level.name)) throw new ConfigError(`${lat}.name: level "${level.name}" is defined twice`);
    levelNames.add(level.name);
    if (!Array.isArray(level.nodes) || level.nodes.length === 0) throw new ConfigError(`${lat}.nodes: must be a non-empty list of nodes, got ${describe(level.nodes)}`);
    const ids: string[] = [];
    level.nodes.forEach((rawNode: unknown, j: number) => {
      const nat = `${lat}.nodes[${j}]`;
      const node = object(rawNode, nat, NODE_FIELDS);
      if (typeof node.id !== 'string' || !NAME.test(node.id)) throw new ConfigError(`${nat}.id: must be ${NAME_RULE}, got ${describe(node.id)}`);
      if (nodes.has(node.id)) throw new ConfigError(`${nat}.id: node "${node.id}" is already defined at ${nodePaths.get(node.id)}`);
      const dialect = dialectOf(node.database, `${nat}.database`);
      const keys = node.keys === undefined ? ['#'] : stringList(node.keys, `${nat}.keys`);
      keys.forEach((pattern, k) => assertPattern(pattern, `${nat}.keys[${k}]`));
      const peers = node.peers === undefined ? [] : stringList(node.peers, `${nat}.peers`);
      nodes.set(node.id, { id: node.id, level: level.name as string, database: node.database as string, dialect, keys, peers: [...peers] });
      nodePaths.set(node.id, nat);
      ids.push(node.id);
    });
    levels.push({ name: level.name, nextRaw: level.next, nextPath: `${lat}.next`, nodes: ids });
  });

  // Peers: known, same level, not itself; then made symmetric.
  for (const node of nodes.values()) {
    node.peers.forEach((peer, k) => {
      const pat = `${nodePaths.get(node.id)}.peers[${k}]`;
      const other = nodes.get(peer);
      if (!other) throw new ConfigError(`${pat}: no node "${peer}" in the topology`);
      if (peer === node.id) throw new ConfigError(`${pat}: a node is not its own peer`);
      if (other.level !== node.level) throw new ConfigError(`${pat}: "${peer}" is on level "${other.level}", not "${node.level}"; peers share a level`);
    });
  }
  for (const node of nodes.values()) {
    for (const peer of node.peers) {
      const other = nodes.get(peer) as TopologyNode & { peers: string[] };
      if (!other.peers.includes(node.id)) other.peers.push(node.id);
    }
  }

  const resolvedLevels = levels.map((level, i) => {
    let next: string[];
    if (level.nextRaw === undefined) next = levels[i + 1] ? [(levels[i + 1] as { name: string }).name] : [];
    else {
      next = stringList(level.nextRaw, level.nextPath);
      next.forEach((target, k) => {
        if (!levelNames.has(target)) throw new ConfigError(`${level.nextPath}[${k}]: no level "${target}"`);
        if (target === level.name) throw new ConfigError(`${level.nextPath}[${k}]: a level is not its own next level (use peers)`);
      });
    }
    return { name: level.name, next, nodes: level.nodes };
  });

  const nodeList = [...nodes.values()];
  const levelByName = new Map(resolvedLevels.map((l) => [l.name, l]));
  const routes = new Map<string, Route>();

  const routeFrom = (origin: string, routingKey: string): Route => {
    const cacheKey = `${origin}\u0000${routingKey}`;
    const cached = routes.get(cacheKey);
    if (cached) return cached;
    const start = topology.node(origin);
    assertRoutingKey(routingKey);
    // Breadth-first spanning tree: each node is attached to the first node that reaches it, so it has exactly one parent.
    const subtree = new Map<string, Record<string, Route>>([[start.id, {}]]);
    const queue: TopologyNode[] = [start];
    for (let head = 0; head < queue.length; head++) {
      const from = queue[head] as TopologyNode;
      const candidates = [
        ...from.peers.map((id) => nodes.get(id) as TopologyNode),
        ...(levelByName.get(from.level)?.next ?? []).flatMap((level) => (levelByName.get(level)?.nodes ?? []).map((id) => nodes.get(id) as TopologyNode)),
      ];
      for (const to of candidates) {
        if (subtree.has(to.id) || !to.keys.some((pattern) => topicMatches(pattern, routingKey))) continue;
        const own: Record<string, Route> = {};
        (subtree.get(from.id) as Record<string, Route>)[to.id] = own;
        subtree.set(to.id, own);
        queue.push(to);
      }
    }
    const route = deepFreeze(subtree.get(start.id) as Route);
    if (routes.size >= ROUTE_CACHE_LIMIT) routes.clear();
    routes.set(cacheKey, route);
    return route;
  };

  const topology: Topology = {
    name,
    partitions,
    levels: resolvedLevels,
    statements,
    deliveryLimit,
    maxLength,
    nodes: nodeList,
    node(id) {
      const node = nodes.get(id);
      if (!node) throw new ConfigError(`node: no node "${id}" in topology "${name}" (nodes: ${[...nodes.keys()].join(', ')})`);
      return node;
    },
    routeFrom,
    partitionOf: (key) => fnv1a(key) % partitions,
  };
  return topology;
}

/** AMQP topic matching: words split on `.`, `*` matches exactly one word, `#` zero or more. */
export function topicMatches(pattern: string, routingKey: string): boolean {
  const p = pattern.split('.');
  const k = routingKey.split('.');
  const match = (i: number, j: number): boolean => {
    if (i === p.length) return j === k.length;
    if (p[i] === '#') {
      for (let skip = j; skip <= k.length; skip++) if (match(i + 1, skip)) return true;
      return false;
    }
    if (j === k.length) return false;
    return (p[i] === '*' || p[i] === k[j]) && match(i + 1, j + 1);
  };
  return match(0, 0);
}

/** Every node of a route, depth first. */
export function nodesOf(route: Route): string[] {
  return Object.entries(route).flatMap(([node, below]) => [node, ...nodesOf(below)]);
}

/** @throws ConfigError unless `routingKey` is 1–16 dot-separated words of letters, digits, `_`, `-`. */
export function assertRoutingKey(routingKey: unknown, field = 'routingKey'): asserts routingKey is string {
  const words = typeof routingKey === 'string' ? routingKey.split('.') : [];
  if (words.length === 0 || words.length > 16 || !words.every((w) => ROUTING_WORD.test(w))) {
    throw new ConfigError(`${field}: must be 1–16 words of letters, digits, "_" or "-" separated by ".", got ${describe(routingKey)}`);
  }
}

function assertPattern(pattern: string, field: string): void {
  const words = pattern.split('.');
  if (words.length > 16 || !words.every((w) => w === '*' || w === '#' || ROUTING_WORD.test(w))) {
    throw new ConfigError(`${field}: must be a routing-key pattern such as "eu.#" or "*.orders", got ${JSON.stringify(pattern)}`);
  }
}

/** The database's dialect; its whole URL is checked now (unknown options refused), not at the relay's start. */
function dialectOf(url: unknown, field: string): DialectKind {
  // The topology's messages open with the field's path and a colon, as every other one of its messages.
  return parseSqlUrl(url, { label: `${field}:`, error: ConfigError }).kind;
}

function object(value: unknown, at: string, fields: ReadonlySet<string>): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${at}: must be an object, got ${describe(value)}`);
  const unknown = Object.keys(value).filter((k) => !fields.has(k));
  if (unknown.length > 0) throw new ConfigError(`${at}: unknown field ${unknown.map((k) => JSON.stringify(k)).join(', ')} (known: ${[...fields].join(', ')})`);
  return value as Record<string, unknown>;
}

function stringList(value: unknown, at: string): string[] {
  if (!Array.isArray(value)) throw new ConfigError(`${at}: must be a list of strings, got ${describe(value)}`);
  value.forEach((item, i) => {
    if (typeof item !== 'string' || item === '') throw new ConfigError(`${at}[${i}]: must be a non-empty string, got ${describe(item)}`);
  });
  return value as string[];
}

function integerIn(value: unknown, at: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${at}: must be an integer from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

function deepFreeze(route: Route): Route {
  for (const below of Object.values(route)) deepFreeze(below);
  return Object.freeze(route);
}
