/**
 * Parses and validates a Redis store URL. No driver is loaded here: a bad URL fails before anything
 * connects, and the error names the URL (credentials redacted) and the bad part.
 *
 * `redis://[[user]:password@]host[:port][/db][?option=value&…]`, or `rediss://…` for TLS.
 */
import { readFileSync } from 'node:fs';
import { StoreUrlError } from '../../core/errors.js';
import { redactUrl } from '../../core/redact.js';

export interface RedisTlsConfig {
  /** PEM CA bundle that signs the server certificate (default: Node's trusted roots). */
  readonly ca?: string;
  /** PEM client certificate and key, for servers that require mutual TLS. */
  readonly cert?: string;
  readonly key?: string;
  /** Name checked against the server certificate (default: the URL host). */
  readonly servername?: string;
}

export interface RedisStoreConfig {
  readonly host: string;
  readonly port: number;
  readonly db: number;
  readonly username?: string;
  readonly password?: string;
  /** Present for `rediss://` only. */
  readonly tls?: RedisTlsConfig;
  /** First part of every key's hash tag: `{prefix:cluster}`. Default `baton`. */
  readonly prefix: string;
  /** A command without a reply after this long fails with StoreUnavailableError (its outcome is unknown). */
  readonly commandTimeoutMs: number;
  /** How long opening (and each reconnection attempt) may take. */
  readonly connectTimeoutMs: number;
  /** How often a handle with watchers looks for sessions of crashed processes. */
  readonly crashCheckMs: number;
  /**
   * What proves an owner crashed. `process` (default): its connection is gone AND its process is provably
   * gone (same host only). `connection`: its connection is gone; also catches crashes on other hosts, but
   * is safe only if connections close only when processes die or the owner's keeper notices at once
   * (see docs/stores/redis.md).
   */
  readonly crashDetection: 'process' | 'connection';
  /** The URL with its password redacted, for messages. */
  readonly shown: string;
}

const OPTIONS = ['prefix', 'commandTimeoutMs', 'connectTimeoutMs', 'crashCheckMs', 'crashDetection', 'tlsCa', 'tlsCert', 'tlsKey', 'tlsServername'] as const;
type OptionName = (typeof OPTIONS)[number];

/** @throws StoreUrlError naming the URL (password redacted) and what is wrong with it. */
export function parseRedisUrl(url: string): RedisStoreConfig {
  const shown = redactUrl(url);
  const fail = (problem: string): never => {
    throw new StoreUrlError(`redis store ${JSON.stringify(shown)}: ${problem}`);
  };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return fail('not a valid URL; expected "redis://[:password@]host[:port][/db]"');
  }
  const scheme = parsed.protocol.slice(0, -1).toLowerCase();
  if (scheme !== 'redis' && scheme !== 'rediss') fail(`unsupported scheme "${scheme}:"; expected "redis:" or "rediss:" (TLS)`);
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') fail('missing host; expected "redis://host:6379"');
  const port = parsed.port === '' ? 6379 : Number(parsed.port);
  const dbPart = parsed.pathname.replace(/^\//, '');
  if (!/^\d{0,5}$/.test(dbPart)) fail(`database "${dbPart}" must be a number such as /0`);
  const db = dbPart === '' ? 0 : Number(dbPart);
  if (parsed.hash !== '') fail('a fragment ("#…") is not allowed');

  const values = new Map<OptionName, string>();
  for (const [name, value] of parsed.searchParams) {
    if (!(OPTIONS as readonly string[]).includes(name)) fail(`unknown option "${name}" (known: ${OPTIONS.join(', ')})`);
    if (values.has(name as OptionName)) fail(`option "${name}" is given twice`);
    values.set(name as OptionName, value);
  }
  const tls = scheme === 'rediss';
  for (const name of ['tlsCa', 'tlsCert', 'tlsKey', 'tlsServername'] as const) {
    if (values.has(name) && !tls) fail(`option "${name}" needs TLS: use "rediss://"`);
  }
  if (values.has('tlsCert') !== values.has('tlsKey')) fail('options "tlsCert" and "tlsKey" go together');

  const prefix = values.get('prefix') ?? 'baton';
  // Braces would end the hash tag early; ':' separates the tag's two parts.
  if (!/^[\w.-]{1,64}$/.test(prefix)) fail(`prefix "${prefix}" may hold 1 to 64 letters, digits, '.', '_' and '-'`);
  const integer = (name: OptionName, fallback: number, min: number, max: number): number => {
    const raw = values.get(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      fail(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    }
    return value;
  };
  const crashDetection = (raw: string): 'process' | 'connection' =>
    raw === 'process' || raw === 'connection' ? raw : fail(`crashDetection must be "process" or "connection", got ${JSON.stringify(raw)}`);
  const readPem = (name: 'tlsCa' | 'tlsCert' | 'tlsKey'): string | undefined => {
    const file = values.get(name);
    if (file === undefined) return undefined;
    try {
      return readFileSync(file, 'utf8');
    } catch (error) {
      return fail(`${name}: cannot read ${JSON.stringify(file)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };

  const config: RedisStoreConfig = {
    host,
    port: Number.isInteger(port) && port > 0 && port < 65536 ? port : fail(`port "${parsed.port}" is out of range`),
    db,
    ...(parsed.username ? { username: decodePart(parsed.username, 'the user name', fail) } : {}),
    ...(parsed.password ? { password: decodePart(parsed.password, 'the password', fail) } : {}),
    prefix,
    commandTimeoutMs: integer('commandTimeoutMs', 2000, 50, 60_000),
    connectTimeoutMs: integer('connectTimeoutMs', 2000, 50, 60_000),
    crashCheckMs: integer('crashCheckMs', 250, 10, 60_000),
    crashDetection: crashDetection(values.get('crashDetection') ?? 'process'),
    shown,
  };
  if (!tls) return config;
  const ca = readPem('tlsCa');
  const cert = readPem('tlsCert');
  const key = readPem('tlsKey');
  const servername = values.get('tlsServername');
  return {
    ...config,
    tls: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(servername ? { servername } : {}) },
  };
}

/** decodeURIComponent that reports malformed percent-encoding through `fail` (a StoreUrlError). */
function decodePart(text: string, what: string, fail: (what: string) => never): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return fail(`${what} is not valid percent-encoding`);
  }
}
