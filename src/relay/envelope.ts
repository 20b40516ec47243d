/**
 * The envelope: one change as it travels between relays. An AMQP message carries a bundle of them (a JSON
 * array, in the order they are to be applied): the broker's work is per message, so a publisher sends what
 * it has for one queue together; the message is signed as a whole (signature.ts). Version 2:
 *
 * | field | meaning |
 * |---|---|
 * | `v` | schema version (2) |
 * | `id` | the change's id, the same at every hop: 26 characters, time-ordered (48-bit ms + 80 random bits, Crockford base32, as ULID) |
 * | `origin` | the node where the change was made |
 * | `app` | the application that made it (free text, for people and filters) |
 * | `key`, `seq` | the ordering key and the change's number for (origin, key), from 1 without gaps |
 * | `rk` | the routing key, matched against nodes' `keys` |
 * | `route` | the remaining route: the receiving node's subtree of the origin's spanning tree |
 * | `visited` | the nodes the change passed through, origin first (provenance) |
 * | `statement`, `args` | a statement name from the registry and its named arguments; never SQL |
 * | `skip` | present on a tombstone: the change was parked upstream with this reason; nothing to apply, only the order to keep |
 * | `createdAt` | wall-clock ms at the origin |
 *
 * Version 1 (the first release) signed each envelope (`kid`, `sig` fields); version 2 signs each message.
 *
 * Guarantees: {@link parseMessage} accepts only a bundle of complete version-2 envelopes with fields of the
 * right types and sizes (an {@link EnvelopeError} names the first bad envelope and field); a consumer
 * parses a message only after its signature was checked.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import { EnvelopeError, StatementError } from './errors.js';
import type { JsonValue, StatementArgs } from './statements.js';
import type { Route } from './topology.js';

export const ENVELOPE_VERSION = 2;

export interface Envelope {
  readonly v: 2;
  readonly id: string;
  readonly origin: string;
  readonly app: string;
  readonly key: string;
  readonly seq: number;
  readonly rk: string;
  readonly route: Route;
  readonly visited: readonly string[];
  readonly statement: string;
  readonly args: StatementArgs;
  readonly skip?: string;
  readonly createdAt: number;
}

/** The most bytes an envelope may have on the wire. */
export const MAX_ENVELOPE_BYTES = 256 * 1024;
/** The most bytes a message may have: a bundle of envelopes (publishers stay far below: see outbox.ts). */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
/** The most envelopes one message may carry. */
export const MAX_BUNDLE_CHANGES = 10_000;
const MAX_KEY_CHARS = 128;
const ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const NODE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const FIELDS = new Set(['v', 'id', 'origin', 'app', 'key', 'seq', 'rk', 'route', 'visited', 'statement', 'args', 'skip', 'createdAt']);
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A new time-ordered change id (ULID layout) from `clock`'s wall time. */
export function newChangeId(clock: Clock): string {
  let time = Math.max(0, Math.floor(clock.now()));
  let head = '';
  for (let i = 0; i < 10; i++) {
    head = (CROCKFORD[time % 32] as string) + head;
    time = Math.floor(time / 32);
  }
  const random = randomTail();
  let bits = 0n;
  for (const byte of random) bits = (bits << 8n) | BigInt(byte);
  let tail = '';
  for (let i = 0; i < 16; i++) {
    tail = (CROCKFORD[Number(bits & 31n)] as string) + tail;
    bits >>= 5n;
  }
  return head + tail;
}

/** Random bytes taken 10 at a time from a pool filled 4 KiB at once (one call per id was an origin's largest cost). */
let pool = Buffer.alloc(0);
let poolAt = 0;
function randomTail(): Buffer {
  if (poolAt + 10 > pool.length) {
    pool = randomBytes(4096);
    poolAt = 0;
  }
  poolAt += 10;
  return pool.subarray(poolAt - 10, poolAt);
}

/** The wall-clock ms encoded in a change id. */
export function timeOfChangeId(id: string): number {
  let time = 0;
  for (const char of id.slice(0, 10)) time = time * 32 + CROCKFORD.indexOf(char);
  return time;
}

/**
 * Parses one envelope (as stored in `relay_held`), checking its schema.
 * @throws EnvelopeError naming the first bad field.
 */
export function parseEnvelope(body: Buffer | string): Envelope {
  const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  if (size > MAX_ENVELOPE_BYTES) throw new EnvelopeError(`envelope: ${size} bytes, more than ${MAX_ENVELOPE_BYTES}`);
  return checkEnvelope(parseJson(body, 'envelope'), 'envelope');
}

/**
 * Parses a message body: a bundle, i.e. a JSON array of 1 to {@link MAX_BUNDLE_CHANGES} envelopes in the
 * order they are to be applied, checking every envelope's schema. A bundle is accepted or rejected whole.
 * @throws EnvelopeError naming the first bad envelope and field (`message[3].seq: …`).
 */
export function parseMessage(body: Buffer | string): Envelope[] {
  const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  if (size > MAX_MESSAGE_BYTES) throw new EnvelopeError(`message: ${size} bytes, more than ${MAX_MESSAGE_BYTES}`);
  const value = parseJson(body, 'message');
  if (!Array.isArray(value)) throw new EnvelopeError('message: not a JSON array of envelopes');
  if (value.length === 0 || value.length > MAX_BUNDLE_CHANGES) throw new EnvelopeError(`message: a bundle holds 1 to ${MAX_BUNDLE_CHANGES} envelopes, this one ${value.length}`);
  return value.map((item, i) => checkEnvelope(item, `message[${i}]`));
}

/** Serialises envelopes as one bundle (a JSON array). */
export function encodeBundle(envelopes: readonly Envelope[]): string {
  return `[${envelopes.map(encodeEnvelope).join(',')}]`;
}

function parseJson(body: Buffer | string, at: string): unknown {
  try {
    return JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch (error) {
    throw new EnvelopeError(`${at}: not JSON: ${(error as Error).message}`, { cause: error });
  }
}

function checkEnvelope(value: unknown, at: string): Envelope {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new EnvelopeError(`${at}: not a JSON object`);
  const e = value as Record<string, unknown>;
  for (const k in e) {
    if (!FIELDS.has(k)) {
      const unknown = Object.keys(e).filter((name) => !FIELDS.has(name));
      throw new EnvelopeError(`${at}: unknown field ${unknown.map((name) => JSON.stringify(name)).join(', ')}`);
    }
  }
  if (e.v !== ENVELOPE_VERSION) throw new EnvelopeError(`${at}.v: version ${JSON.stringify(e.v)} is not one this relay reads (${ENVELOPE_VERSION})`);
  const str = (field: string, test: (s: string) => boolean, rule: string): string => {
    const v = e[field];
    if (typeof v !== 'string' || !test(v)) throw new EnvelopeError(`${at}.${field}: must be ${rule}`);
    return v;
  };
  str('id', (s) => ID.test(s), 'a 26-character time-ordered id');
  str('origin', (s) => NODE.test(s), 'a node id');
  str('app', (s) => s.length <= 128, 'a string of at most 128 characters');
  str('key', (s) => s.length <= MAX_KEY_CHARS, `a string of at most ${MAX_KEY_CHARS} characters`);
  str('rk', (s) => s.length >= 1 && s.length <= 255, 'a routing key');
  str('statement', (s) => s.length <= 64, 'a statement name');
  if (typeof e.seq !== 'number' || !Number.isSafeInteger(e.seq) || e.seq < 1) throw new EnvelopeError(`${at}.seq: must be a positive integer`);
  if (typeof e.createdAt !== 'number' || !Number.isSafeInteger(e.createdAt) || e.createdAt < 0) throw new EnvelopeError(`${at}.createdAt: must be ms since the epoch`);
  if (!Array.isArray(e.visited) || e.visited.length === 0 || e.visited.length > 256 || !e.visited.every((n) => typeof n === 'string' && NODE.test(n))) {
    throw new EnvelopeError(`${at}.visited: must be a non-empty list of node ids`);
  }
  if (e.visited[0] !== e.origin) throw new EnvelopeError(`${at}.visited: must start with the origin`);
  if (new Set(e.visited).size !== e.visited.length) throw new EnvelopeError(`${at}.visited: names a node twice (a loop)`);
  assertRoute(e.route, `${at}.route`, 0);
  if (typeof e.args !== 'object' || e.args === null || Array.isArray(e.args)) throw new EnvelopeError(`${at}.args: must be an object`);
  if (e.skip !== undefined && (typeof e.skip !== 'string' || e.skip.length > 2000)) throw new EnvelopeError(`${at}.skip: must be a reason of at most 2000 characters`);
  if (e.skip === undefined && e.statement === '') throw new EnvelopeError(`${at}.statement: must name a statement`);
  return e as unknown as Envelope;
}

function assertRoute(route: unknown, at: string, depth: number): void {
  if (depth > 64) throw new EnvelopeError(`${at}: deeper than 64 hops`);
  if (typeof route !== 'object' || route === null || Array.isArray(route)) throw new EnvelopeError(`${at}: must be an object of node → subtree`);
  for (const [node, below] of Object.entries(route)) {
    if (!NODE.test(node)) throw new EnvelopeError(`${at}: ${JSON.stringify(node)} is not a node id`);
    assertRoute(below, `${at}.${node}`, depth + 1);
  }
}

/** Serialises an envelope for the wire. */
export function encodeEnvelope(envelope: Envelope): string {
  return JSON.stringify(envelope);
}

/** Builds the arguments object of an envelope from a caller's values, rejecting what JSON cannot carry. */
export function toJsonArgs(args: Readonly<Record<string, unknown>>): StatementArgs {
  if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new StatementError('args: must be an object of named values');
  const text = JSON.stringify(args, (_k, v: unknown) => {
    if (typeof v === 'bigint') throw new EnvelopeError('envelope.args: a bigint cannot travel in JSON; pass it as a string');
    if (typeof v === 'number' && !Number.isFinite(v)) throw new EnvelopeError('envelope.args: NaN and Infinity cannot travel in JSON');
    return v;
  });
  return JSON.parse(text) as Record<string, JsonValue>;
}
