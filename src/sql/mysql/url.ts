/**
 * MySQL / MariaDB URLs: `mysql://[user[:password]@]host[:port]/database[?option=value&…]` (also
 * `mariadb://`), with TLS options (`ssl`, `sslCa`, `sslCert`, `sslKey`, `sslRejectUnauthorized`), a Unix
 * `socket` and a connect timeout; the user of the URL (a store, the HTTP sync, the relay) adds its own.
 */
import type { OptionTable, OptionValues } from '../url-options.js';
import { readUrlOptions } from '../url-options.js';
import { splitServerUrl, type ParsedServerUrl, type UrlProblems } from '../url-parts.js';
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

export interface MysqlUrl<O extends OptionTable = OptionTable> extends ParsedServerUrl<O> {
  readonly kind: 'mysql';
  /** A Unix socket path, used instead of host and port (`hosts` is then empty). */
  readonly socket: string | undefined;
  readonly database: string;
}

/** @throws through `problems.fail`, naming what is wrong. */
export function readMysqlUrl<O extends OptionTable>(url: string, problems: UrlProblems, table: O): MysqlUrl<O> {
  const { fail } = problems;
  const parts = splitServerUrl(url, fail);
  const { connection, options } = readUrlOptions(parts.params, MYSQL_CONNECTION_OPTIONS, table, fail);
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
