/**
 * Parses and validates a Redis store URL. No driver is loaded here: a bad URL fails before anything
 * connects, and the error names the URL (credentials redacted) and the bad part.
 *
 * `redis://[[user]:password@]host[:port][/db][?option=value&…]`, or `rediss://…` for TLS; or, to follow
 * the master that Redis Sentinel names, `redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/master[/db][?…]`
 * (the hosts are Sentinels, default port 26379; the credentials are the Redis servers').
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
  /** The server (for `redis+sentinel://`, the first Sentinel: unused, the Sentinels name the master). */
  readonly host: string;
  readonly port: number;
  /** `redis+sentinel://` only: the Sentinels asked, in order, where the master `name` is. */
  readonly sentinel?: { readonly name: string; readonly hosts: readonly { readonly host: string; readonly port: number }[] };
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
  const sentinel = /^redis\+sentinel:\/\//i.test(url) ? splitSentinelUrl(url, fail) : undefined;
  let parsed: URL;
  try {
    parsed = new URL(sentinel?.rest ?? url);
  } catch {
    return fail(
      sentinel
        ? 'not a valid URL; expected "redis+sentinel://[:password@]host[:port][,host[:port]…]/master[/db]"'
        : 'not a valid URL; expected "redis://[:password@]host[:port][/db]"',
    );
  }
  const scheme = parsed.protocol.slice(0, -1).toLowerCase();
  if (scheme !== 'redis' && scheme !== 'rediss') fail(`unsupported scheme "${scheme}:"; expected "redis:", "rediss:" (TLS) or "redis+sentinel:"`);
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
    if (values.has(name) && sentinel) fail(`option "${name}": TLS is not supported with "redis+sentinel://"`);
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

  const first = sentinel?.hosts[0];
  const config: RedisStoreConfig = {
    host: first ? first.host : host,
    port: first ? first.port : Number.isInteger(port) && port > 0 && port < 65536 ? port : fail(`port "${parsed.port}" is out of range`),
    db,
    ...(parsed.username ? { username: decodePart(parsed.username, 'the user name', fail) } : {}),
    ...(parsed.password ? { password: decodePart(parsed.password, 'the password', fail) } : {}),
    prefix,
    commandTimeoutMs: integer('commandTimeoutMs', 2000, 50, 60_000),
    connectTimeoutMs: integer('connectTimeoutMs', 2000, 50, 60_000),
    crashCheckMs: integer('crashCheckMs', 250, 10, 60_000),
    crashDetection: crashDetection(values.get('crashDetection') ?? 'process'),
    shown,
    ...(sentinel ? { sentinel: { name: sentinel.name, hosts: sentinel.hosts } } : {}),
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

const SENTINEL_HOST = /^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])$/;

/**
 * Reads the Sentinel list and the master name out of a `redis+sentinel://` URL, and gives back the rest as
 * a plain `redis://` URL (credentials, db, options) for the common parser: a WHATWG URL cannot hold a list
 * of hosts.
 */
function splitSentinelUrl(
  url: string,
  fail: (problem: string) => never,
): { readonly rest: string; readonly name: string; readonly hosts: { readonly host: string; readonly port: number }[] } {
  const afterScheme = url.slice('redis+sentinel://'.length);
  const slash = afterScheme.search(/[/?#]/);
  const authority = slash < 0 ? afterScheme : afterScheme.slice(0, slash);
  const tail = slash < 0 ? '' : afterScheme.slice(slash);
  const at = authority.lastIndexOf('@');
  const userInfo = at < 0 ? '' : authority.slice(0, at + 1);
  const hostList = authority.slice(at + 1);
  if (hostList === '') fail('missing Sentinel host; expected "redis+sentinel://host:26379,host:26380/master"');
  const hosts = hostList.split(',').map((entry) => {
    const match = /^(.*?)(?::(\d{1,5}))?$/.exec(entry) as RegExpExecArray;
    const host = (match[1] as string).replace(/^\[(.*)\]$/, '$1');
    if (!SENTINEL_HOST.test(match[1] as string)) fail(`invalid Sentinel host ${JSON.stringify(entry)}`);
    const port = match[2] === undefined ? 26379 : Number(match[2]);
    if (port < 1 || port > 65535) fail(`Sentinel port "${match[2]}" is out of range`);
    return { host, port };
  });
  const path = /^\/([^/?#]*)(\/[^?#]*)?(.*)$/s.exec(tail);
  const name = path ? decodePart(path[1] as string, 'the master name', fail) : '';
  if (name === '') fail('missing master name; expected "redis+sentinel://host:26379/mymaster"');
  return { rest: `redis://${userInfo}sentinel${path?.[2] ?? ''}${path?.[3] ?? tail}`, name, hosts };
}
