/**
 * Parses `mysql://` and `mariadb://` URLs:
 *
 *   mysql://[user[:password]@]host[:port]/database[?option=value&…]
 *
 * Options: ssl, sslCa, sslCert, sslKey, sslRejectUnauthorized, socket, prefix, pollMs, crashDetection,
 * crashCheckMs, connectTimeoutMs, queryTimeoutMs, lockWaitTimeoutS (docs/stores/mysql.md describes each).
 * Every error names the URL with its password redacted and the part that is wrong.
 */
import { readFile } from 'node:fs/promises';
import { StoreUrlError } from '../../core/errors.js';
import { redactUrl } from '../../core/redact.js';
import type { MysqlStoreOptions } from './mysql-store.js';

export interface ParsedMysqlUrl {
  readonly shown: string;
  readonly host: string;
  readonly port: number;
  readonly user: string | undefined;
  readonly password: string | undefined;
  readonly database: string;
  readonly socket: string | undefined;
  readonly tls: { readonly ca?: string; readonly cert?: string; readonly key?: string; readonly rejectUnauthorized: boolean } | undefined;
  readonly prefix: string;
  readonly pollMs: number;
  readonly crashDetection: boolean;
  readonly crashCheckMs: number;
  readonly connectTimeoutMs: number;
  readonly queryTimeoutMs: number;
  readonly lockWaitTimeoutS: number;
}

const KNOWN = [
  'ssl',
  'sslCa',
  'sslCert',
  'sslKey',
  'sslRejectUnauthorized',
  'socket',
  'prefix',
  'pollMs',
  'crashDetection',
  'crashCheckMs',
  'connectTimeoutMs',
  'queryTimeoutMs',
  'lockWaitTimeoutS',
] as const;

/** @throws StoreUrlError naming the URL (credentials redacted) and the bad part. */
export function parseMysqlUrl(url: string): ParsedMysqlUrl {
  const shown = JSON.stringify(redactUrl(url));
  const fail = (what: string): never => {
    throw new StoreUrlError(`mysql store ${shown}: ${what}`);
  };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return fail('not a valid URL; expected mysql://user:password@host:3306/database');
  }
  if (parsed.protocol !== 'mysql:' && parsed.protocol !== 'mariadb:') {
    fail(`scheme "${parsed.protocol}" is not mysql: or mariadb:`);
  }
  const params = parsed.searchParams;
  for (const key of params.keys()) {
    if (!(KNOWN as readonly string[]).includes(key)) fail(`unknown option "${key}" (known: ${KNOWN.join(', ')})`);
    if (params.getAll(key).length > 1) fail(`option "${key}" is given more than once`);
  }
  const socket = params.get('socket') ?? undefined;
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '' && socket === undefined) fail('missing host; expected mysql://user@host:3306/database');
  const port = parsed.port === '' ? 3306 : Number(parsed.port);
  const database = decodePart(parsed.pathname.replace(/^\//, ''), 'the database name', fail);
  if (database === '' || database.includes('/')) fail('missing or invalid database name in the path; expected …/database');

  const flag = (name: string, fallback: boolean): boolean => {
    const value = params.get(name);
    if (value === null) return fallback;
    if (value === 'true' || value === '1') return true;
    if (value === 'false' || value === '0') return false;
    return fail(`${name} must be true or false, got ${JSON.stringify(value)}`);
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const value = params.get(name);
    if (value === null) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) fail(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
    return n;
  };

  const ca = params.get('sslCa') ?? undefined;
  const cert = params.get('sslCert') ?? undefined;
  const key = params.get('sslKey') ?? undefined;
  if ((cert === undefined) !== (key === undefined)) fail('sslCert and sslKey go together (a client certificate needs its key)');
  const ssl = flag('ssl', ca !== undefined || cert !== undefined);
  if (!ssl && (ca !== undefined || cert !== undefined)) fail('sslCa/sslCert/sslKey given with ssl=false');
  const prefix = params.get('prefix') ?? 'baton_';
  if (!/^[A-Za-z0-9_]{0,32}$/.test(prefix)) fail(`prefix may hold up to 32 letters, digits and '_', got ${JSON.stringify(prefix)}`);

  return {
    shown,
    host,
    port,
    user: parsed.username === '' ? undefined : decodePart(parsed.username, 'the user name', fail),
    password: parsed.password === '' ? undefined : decodePart(parsed.password, 'the password', fail),
    database,
    socket,
    tls: ssl
      ? {
          ...(ca ? { ca } : {}),
          ...(cert ? { cert } : {}),
          ...(key ? { key } : {}),
          rejectUnauthorized: flag('sslRejectUnauthorized', true),
        }
      : undefined,
    prefix,
    pollMs: integer('pollMs', 50, 5, 10_000),
    crashDetection: flag('crashDetection', true),
    crashCheckMs: integer('crashCheckMs', 250, 10, 60_000),
    connectTimeoutMs: integer('connectTimeoutMs', 5000, 100, 120_000),
    queryTimeoutMs: integer('queryTimeoutMs', 5000, 100, 600_000),
    lockWaitTimeoutS: integer('lockWaitTimeoutS', 5, 1, 3600),
  };
}

/** Turns a parsed URL into store options, reading the TLS files it names. @throws StoreUrlError. */
export async function storeOptions(url: ParsedMysqlUrl, cluster: string): Promise<Omit<MysqlStoreOptions, 'clock'>> {
  const file = async (option: string, path: string | undefined): Promise<Buffer | undefined> => {
    if (path === undefined) return undefined;
    try {
      return await readFile(path);
    } catch (error) {
      throw new StoreUrlError(`mysql store ${url.shown}: ${option}: cannot read ${JSON.stringify(path)}: ${(error as Error).message}`);
    }
  };
  const ssl = url.tls
    ? {
        rejectUnauthorized: url.tls.rejectUnauthorized,
        ...(url.tls.ca ? { ca: await file('sslCa', url.tls.ca) } : {}),
        ...(url.tls.cert ? { cert: await file('sslCert', url.tls.cert) } : {}),
        ...(url.tls.key ? { key: await file('sslKey', url.tls.key) } : {}),
      }
    : undefined;
  return {
    cluster,
    shown: url.shown,
    connection: {
      ...(url.socket ? { socketPath: url.socket } : { host: url.host, port: url.port }),
      ...(url.user !== undefined ? { user: url.user } : {}),
      ...(url.password !== undefined ? { password: url.password } : {}),
      database: url.database,
      connectTimeout: url.connectTimeoutMs,
      ...(ssl ? { ssl } : {}),
    },
    prefix: url.prefix,
    pollMs: url.pollMs,
    crashDetection: url.crashDetection,
    crashCheckMs: url.crashCheckMs,
    queryTimeoutMs: url.queryTimeoutMs,
    lockWaitTimeoutS: url.lockWaitTimeoutS,
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
