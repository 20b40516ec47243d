/**
 * Parses and validates a PostgreSQL store URL:
 * `postgres://[user[:password]@]host[:port][/database][?option=value&...]` (also `postgresql://`).
 *
 * Options (query parameters): `schema`, `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `connectTimeoutMs`,
 * `queryTimeoutMs`, `crashDetection`, `reapMs`, `applicationName`. Unknown options are refused, so a typo
 * never silently disables TLS. Every error names the URL with its password redacted, and the bad part.
 * Certificate and key files are read here, at open, so a missing file fails fast.
 */
import { readFileSync } from 'node:fs';
import { StoreUrlError } from '../../core/errors.js';
import { redactUrl } from '../../core/redact.js';

export type SslMode = 'disable' | 'require' | 'verify-ca' | 'verify-full';

/** What the `pg` driver needs for TLS; `false` for a plain connection. */
export type PgSslConfig =
  | false
  | {
      readonly rejectUnauthorized: boolean;
      readonly ca?: string;
      readonly cert?: string;
      readonly key?: string;
      /** verify-ca: the chain is checked, the host name is not. */
      readonly checkServerIdentity?: () => undefined;
    };

export interface PostgresStoreConfig {
  readonly host: string;
  readonly port: number;
  readonly user: string | undefined;
  /** Never logged; undefined lets the driver use PGPASSWORD or ~/.pgpass. */
  readonly password: string | undefined;
  readonly database: string | undefined;
  /** Schema holding baton's tables; created on open. Default `baton`. */
  readonly schema: string;
  readonly sslMode: SslMode;
  readonly ssl: PgSslConfig;
  /** Abandon a connection attempt after this long. Default 5000 ms. */
  readonly connectTimeoutMs: number;
  /** A statement without an answer after this long drops its connection (then reconnects). Default 5000 ms. */
  readonly queryTimeoutMs: number;
  /** Bind sessions to their connection's backend so a crashed process loses them at once. Default true. */
  readonly crashDetection: boolean;
  /** How often a handle with watchers deletes dead sessions (and so notifies). Default 200 ms. */
  readonly reapMs: number;
  readonly applicationName: string;
  /** The URL with its password replaced by `***`, for messages. */
  readonly shown: string;
}

const OPTIONS = [
  'schema',
  'sslmode',
  'sslrootcert',
  'sslcert',
  'sslkey',
  'connectTimeoutMs',
  'queryTimeoutMs',
  'crashDetection',
  'reapMs',
  'applicationName',
] as const;

const SSL_MODES: readonly SslMode[] = ['disable', 'require', 'verify-ca', 'verify-full'];

/** @throws StoreUrlError naming the redacted URL and what is wrong with it. */
export function parsePostgresUrl(url: string): PostgresStoreConfig {
  const shown = redactUrl(url);
  const fail = (what: string): never => {
    throw new StoreUrlError(`postgres store ${JSON.stringify(shown)}: ${what}`);
  };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return fail('not a valid URL; expected "postgres://user@host:5432/database"');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    fail(`scheme must be "postgres:" or "postgresql:", got "${parsed.protocol}"`);
  }
  if (parsed.hostname === '') fail('missing host; expected "postgres://user@host:5432/database"');
  if (parsed.hostname.includes(',')) fail('several hosts are not supported; name one host (or a load balancer)');
  const port = parsed.port === '' ? 5432 : Number(parsed.port);
  const path = decodePart(parsed.pathname.replace(/^\//, ''), 'the database name', fail);
  if (path.includes('/')) fail(`database name may not contain "/", got ${JSON.stringify(path)}`);

  const params = parsed.searchParams;
  for (const key of params.keys()) {
    if (!(OPTIONS as readonly string[]).includes(key)) fail(`unknown option "${key}" (known: ${OPTIONS.join(', ')})`);
  }
  for (const key of OPTIONS) {
    if (params.getAll(key).length > 1) fail(`option "${key}" is given more than once`);
  }

  const schema = params.get('schema') ?? 'baton';
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    fail(`schema must be a lower-case SQL identifier (letters, digits, '_', at most 63), got ${JSON.stringify(schema)}`);
  }
  const sslModeText = params.get('sslmode') ?? 'disable';
  if (!(SSL_MODES as readonly string[]).includes(sslModeText)) {
    const hint = sslModeText === 'prefer' || sslModeText === 'allow' ? ' (no silent plain-text fallback: choose one)' : '';
    fail(`sslmode must be one of ${SSL_MODES.join(', ')}, got ${JSON.stringify(sslModeText)}${hint}`);
  }
  const sslMode = sslModeText as SslMode;
  const readPem = (option: 'sslrootcert' | 'sslcert' | 'sslkey'): string | undefined => {
    const file = params.get(option);
    if (file === null) return undefined;
    if (sslMode === 'disable') fail(`${option} needs sslmode=require, verify-ca or verify-full (sslmode is disable)`);
    try {
      return readFileSync(file, 'utf8');
    } catch (error) {
      return fail(`${option}: cannot read ${JSON.stringify(file)}: ${(error as Error).message}`);
    }
  };
  const ca = readPem('sslrootcert');
  const cert = readPem('sslcert');
  const key = readPem('sslkey');
  if ((cert === undefined) !== (key === undefined)) fail('sslcert and sslkey must be given together');
  if (sslMode === 'verify-ca' && ca === undefined) fail('sslmode=verify-ca needs sslrootcert (the CA that signed the server)');

  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number.isInteger(port) && port > 0 && port < 65536 ? port : fail(`invalid port ${JSON.stringify(parsed.port)}`),
    user: parsed.username === '' ? undefined : decodePart(parsed.username, 'the user name', fail),
    password: parsed.password === '' ? undefined : decodePart(parsed.password, 'the password', fail),
    database: path === '' ? undefined : path,
    schema,
    sslMode,
    ssl: sslConfig(sslMode, ca, cert, key),
    connectTimeoutMs: integerOption(params, 'connectTimeoutMs', 5000, 100, 600_000, fail),
    queryTimeoutMs: integerOption(params, 'queryTimeoutMs', 5000, 100, 600_000, fail),
    crashDetection: booleanOption(params, 'crashDetection', true, fail),
    reapMs: integerOption(params, 'reapMs', 200, 10, 60_000, fail),
    applicationName: params.get('applicationName') ?? 'baton',
    shown,
  };
}

function sslConfig(mode: SslMode, ca?: string, cert?: string, key?: string): PgSslConfig {
  const files = { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
  switch (mode) {
    case 'disable':
      return false;
    case 'require':
      // libpq semantics: encrypted, server not verified (unless a root certificate is given, as libpq does).
      return { rejectUnauthorized: ca !== undefined, ...files, ...(ca ? { checkServerIdentity: () => undefined } : {}) };
    case 'verify-ca':
      return { rejectUnauthorized: true, ...files, checkServerIdentity: () => undefined };
    case 'verify-full':
      return { rejectUnauthorized: true, ...files };
  }
}

function integerOption(
  params: URLSearchParams,
  name: string,
  fallback: number,
  min: number,
  max: number,
  fail: (what: string) => never,
): number {
  const text = params.get(name);
  if (text === null) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
    fail(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return value;
}

function booleanOption(params: URLSearchParams, name: string, fallback: boolean, fail: (what: string) => never): boolean {
  const text = params.get(name);
  if (text === null) return fallback;
  if (text === 'true') return true;
  if (text === 'false') return false;
  return fail(`${name} must be "true" or "false", got ${JSON.stringify(text)}`);
}

/** decodeURIComponent that reports malformed percent-encoding through `fail` (a StoreUrlError). */
function decodePart(text: string, what: string, fail: (what: string) => never): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return fail(`${what} is not valid percent-encoding`);
  }
}
