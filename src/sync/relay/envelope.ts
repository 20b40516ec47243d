/**
 * The envelope: what travels between relays, one AMQP message each. Version 1:
 *
 * | field | meaning |
 * |---|---|
 * | `v` | schema version (1) |
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
 * | `kid`, `sig` | the signing key's id and the HMAC-SHA256 (base64url) of every other field ({@link canonicalPayload}) |
 *
 * Guarantees: {@link parseEnvelope} accepts only a complete version-1 envelope with fields of the right
 * types and sizes (an {@link EnvelopeError} names the first bad field); nothing else about it is trusted
 * until its signature is checked (signature.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../core/clock.js';
import { EnvelopeError, StatementError } from './errors.js';
import type { JsonValue, StatementArgs } from './statements.js';
import type { Route } from './topology.js';

export const ENVELOPE_VERSION = 1;

export interface UnsignedEnvelope {
  readonly v: 1;
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
  readonly kid: string;
}

export interface Envelope extends UnsignedEnvelope {
  readonly sig: string;
}

/** The most bytes an envelope may have on the wire. */
export const MAX_ENVELOPE_BYTES = 256 * 1024;
const MAX_KEY_CHARS = 128;
const ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const NODE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const FIELDS = ['v', 'id', 'origin', 'app', 'key', 'seq', 'rk', 'route', 'visited', 'statement', 'args', 'skip', 'createdAt', 'kid', 'sig'];
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
 * The exact text the signature covers: the values of every field but `sig`, in a fixed order, with object
 * keys sorted, so that the same envelope signs the same on every node whatever its JSON key order.
 */
export function canonicalPayload(envelope: UnsignedEnvelope): string {
  return canonicalJson([
    envelope.v,
    envelope.id,
    envelope.origin,
    envelope.app,
    envelope.key,
    envelope.seq,
    envelope.rk,
    envelope.route,
    envelope.visited,
    envelope.statement,
    envelope.args,
    envelope.skip ?? null,
    envelope.createdAt,
    envelope.kid,
  ]);
}

/** JSON with object keys sorted at every depth. */
export function canonicalJson(value: unknown): string {
  // Loops rather than map/filter/join: it runs twice per message and hop (sign, verify).
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) {
    let out = '[';
    // `?? ''`: as Array.join renders an undefined element (signatures must match across versions).
    for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + ((canonicalJson(value[i]) as string | undefined) ?? '');
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  let out = '{';
  for (const key of Object.keys(record).sort()) {
    const item = record[key];
    if (item === undefined) continue;
    out += `${out.length === 1 ? '' : ','}${JSON.stringify(key)}:${canonicalJson(item)}`;
  }
  return `${out}}`;
}

/**
 * Parses a message body into an envelope, checking its schema (not its signature).
 * @throws EnvelopeError naming the first bad field.
 */
export function parseEnvelope(body: Buffer | string): Envelope {
  const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  if (size > MAX_ENVELOPE_BYTES) throw new EnvelopeError(`envelope: ${size} bytes, more than ${MAX_ENVELOPE_BYTES}`);
  let value: unknown;
  try {
    value = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch (error) {
    throw new EnvelopeError(`envelope: not JSON: ${(error as Error).message}`, { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new EnvelopeError('envelope: not a JSON object');
  const e = value as Record<string, unknown>;
  const unknown = Object.keys(e).filter((k) => !FIELDS.includes(k));
  if (unknown.length > 0) throw new EnvelopeError(`envelope: unknown field ${unknown.map((k) => JSON.stringify(k)).join(', ')}`);
  if (e.v !== ENVELOPE_VERSION) throw new EnvelopeError(`envelope.v: version ${JSON.stringify(e.v)} is not one this relay reads (${ENVELOPE_VERSION})`);
  const str = (field: string, test: (s: string) => boolean, rule: string): string => {
    const v = e[field];
    if (typeof v !== 'string' || !test(v)) throw new EnvelopeError(`envelope.${field}: must be ${rule}`);
    return v;
  };
  str('id', (s) => ID.test(s), 'a 26-character time-ordered id');
  str('origin', (s) => NODE.test(s), 'a node id');
  str('app', (s) => s.length <= 128, 'a string of at most 128 characters');
  str('key', (s) => s.length <= MAX_KEY_CHARS, `a string of at most ${MAX_KEY_CHARS} characters`);
  str('rk', (s) => s.length >= 1 && s.length <= 255, 'a routing key');
  str('statement', (s) => s.length <= 64, 'a statement name');
  str('kid', (s) => /^[\w.-]{1,64}$/.test(s), 'a key id');
  str('sig', (s) => /^[A-Za-z0-9_-]{43}$/.test(s), 'a base64url HMAC-SHA256');
  if (typeof e.seq !== 'number' || !Number.isSafeInteger(e.seq) || e.seq < 1) throw new EnvelopeError('envelope.seq: must be a positive integer');
  if (typeof e.createdAt !== 'number' || !Number.isSafeInteger(e.createdAt) || e.createdAt < 0) throw new EnvelopeError('envelope.createdAt: must be ms since the epoch');
  if (!Array.isArray(e.visited) || e.visited.length === 0 || e.visited.length > 256 || !e.visited.every((n) => typeof n === 'string' && NODE.test(n))) {
    throw new EnvelopeError('envelope.visited: must be a non-empty list of node ids');
  }
  if (e.visited[0] !== e.origin) throw new EnvelopeError('envelope.visited: must start with the origin');
  if (new Set(e.visited).size !== e.visited.length) throw new EnvelopeError('envelope.visited: names a node twice (a loop)');
  assertRoute(e.route, 'envelope.route', 0);
  if (typeof e.args !== 'object' || e.args === null || Array.isArray(e.args)) throw new EnvelopeError('envelope.args: must be an object');
  if (e.skip !== undefined && (typeof e.skip !== 'string' || e.skip.length > 2000)) throw new EnvelopeError('envelope.skip: must be a reason of at most 2000 characters');
  if (e.skip === undefined && e.statement === '') throw new EnvelopeError('envelope.statement: must name a statement');
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
