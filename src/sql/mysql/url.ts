/**
 * MySQL / MariaDB URLs: `mysql://[user[:password]@]host[:port]/database[?option=value&…]` (also
 * `mariadb://`), with TLS options (`ssl`, `sslCa`, `sslCert`, `sslKey`, `sslRejectUnauthorized`), a Unix
 * `socket` and a connect timeout; the user of the URL (a store, the HTTP sync, the relay) adds its own.
 */
import type { OptionTable, OptionValues } from '../url-options.js';
import { readOptions } from '../url-options.js';
import { splitServerUrl, type UrlProblems } from '../url-parts.js';
import type { SqlTls, TlsFile } from '../tls.js';

/** The connection options every MySQL URL accepts (docs/database-urls.md). */
export const MYSQL_CONNECTION_OPTIONS = {
  ssl: { type: 'boolean', default: false },
  sslCa: { type: 'text' },
  sslCert: { type: 'text' },
  sslKey: { type: 'text' },
  sslRejectUnauthorized: { type: 'boolean', default: true },
  socket: { type: 'text' },
  connectTimeoutMs: { type: 'integer', min: 100, max: 120_000 },
} as const satisfies OptionTable;

export interface MysqlUrl<O extends OptionTable = OptionTable> {
  readonly kind: 'mysql';
  /** The URL with its password replaced by `***`, for messages. */
  readonly shown: string;
  /** The server (port default 3306); empty when the URL names a `socket` instead. */
  readonly hosts: readonly { readonly host: string; readonly port: number }[];
  /** A Unix socket path, used instead of host and port. */
  readonly socket: string | undefined;
  readonly user: string | undefined;
  /** Never logged. */
  readonly password: string | undefined;
  readonly database: string;
  /** Undefined for a plain connection. */
  readonly tls: SqlTls | undefined;
  /** Undefined when the URL sets none: the user of the URL picks its default. */
  readonly connectTimeoutMs: number | undefined;
  readonly options: OptionValues<O>;
  /** The error for a problem found later with this URL (an unreadable certificate file). */
  readonly refuse: UrlProblems['refuse'];
}

/** @throws through `problems.fail`, naming what is wrong. */
export function readMysqlUrl<O extends OptionTable>(url: string, problems: UrlProblems, table: O): MysqlUrl<O> {
  const { fail } = problems;
  const parts = splitServerUrl(url, fail);
  const known = [...Object.keys(MYSQL_CONNECTION_OPTIONS), ...Object.keys(table)];
  const connection = readOptions(parts.params, MYSQL_CONNECTION_OPTIONS, known, fail);
  const options = readOptions(parts.params, table, known, fail);
  if (parts.hosts.length > 1) fail('several hosts are not supported; name one host (or a proxy that follows the primary)');
  const hosts = parts.hosts.filter((h) => h.host !== '').map((h) => ({ host: h.host, port: h.port ?? 3306 }));
  if (hosts.length === 0 && connection.socket === undefined) fail('missing host; expected mysql://user@host:3306/database');
  if (parts.path === '' || parts.path.includes('/')) fail('missing or invalid database name in the path; expected …/database');
  return {
    kind: 'mysql',
    shown: problems.shown,
    hosts,
    socket: connection.socket,
    user: parts.user,
    password: parts.password,
    database: parts.path,
    tls: mysqlTls(parts.params, connection, fail),
    connectTimeoutMs: connection.connectTimeoutMs,
    options,
    refuse: problems.refuse,
  };
}

function mysqlTls(
  params: ReadonlyMap<string, string>,
  o: OptionValues<typeof MYSQL_CONNECTION_OPTIONS>,
  fail: (what: string) => never,
): SqlTls | undefined {
  const file = (option: 'sslCa' | 'sslCert' | 'sslKey'): TlsFile | undefined => (o[option] === undefined ? undefined : { option, path: o[option] });
  const ca = file('sslCa');
  const cert = file('sslCert');
  const key = file('sslKey');
  if ((cert === undefined) !== (key === undefined)) fail('sslCert and sslKey go together (a client certificate needs its key)');
  // A CA or a client certificate asks for TLS by itself; ssl=false with one of them is a contradiction.
  const ssl = params.has('ssl') ? o.ssl : ca !== undefined || cert !== undefined;
  if (!ssl && (ca !== undefined || cert !== undefined)) fail('sslCa/sslCert/sslKey given with ssl=false');
  if (!ssl) return undefined;
  return { verify: o.sslRejectUnauthorized ? 'full' : 'none', ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}
