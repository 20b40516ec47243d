/**
 * PostgreSQL URLs: `postgres://[user[:password]@]host[:port][/database][?option=value&…]` (also
 * `postgresql://`), with libpq's TLS options (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) and baton's
 * connection options; the user of the URL (a store, the HTTP sync, the relay) adds its own.
 *
 * Hosts are a list, as in libpq (`h1:5432,h2:5433`); a list is accepted only from a reader that connects to
 * the hosts in turn (`multiHost`: the PostgreSQL store, with its `target_session_attrs`) and refused
 * elsewhere, where only the first host would ever be used.
 */
import type { OptionTable, OptionValues } from '../url-options.js';
import { readUrlOptions } from '../url-options.js';
import { splitServerUrl, type HostPort, type ParsedServerUrl, type UrlProblems } from '../url-parts.js';
import type { SqlTls, TlsFile } from '../tls.js';

/** The connection options every PostgreSQL URL accepts (docs/database-urls.md). */
export const POSTGRES_CONNECTION_OPTIONS = {
  sslmode: {
    type: 'choice',
    choices: ['disable', 'require', 'verify-ca', 'verify-full'],
    default: 'disable',
    hints: { prefer: ' (no silent plain-text fallback: choose one)', allow: ' (no silent plain-text fallback: choose one)' },
  },
  sslrootcert: { type: 'text' },
  sslcert: { type: 'text' },
  sslkey: { type: 'text' },
  connectTimeoutMs: { type: 'integer', min: 100, max: 600_000 },
  applicationName: { type: 'text', default: 'baton' },
} as const satisfies OptionTable;

export interface PostgresUrl<O extends OptionTable = OptionTable> extends ParsedServerUrl<O> {
  readonly kind: 'postgres';
  /** Undefined: the server's default (the user name). */
  readonly database: string | undefined;
  /** Shown in `pg_stat_activity`. */
  readonly applicationName: string;
}

/** @throws through `problems.fail`, naming what is wrong. */
export function readPostgresUrl<O extends OptionTable>(url: string, problems: UrlProblems, table: O, multiHost = false): PostgresUrl<O> {
  const { fail } = problems;
  const parts = splitServerUrl(url, fail);
  const hosts = parts.hosts.map((h: HostPort) => ({ host: h.host, port: h.port ?? 5432 }));
  if (hosts.some((h) => h.host === '')) fail('missing host; expected "postgres://user@host:5432/database"');
  if (hosts.length > 1 && !multiHost) fail('several hosts are not supported here; name one host (or a load balancer)');
  const seen = new Set<string>();
  for (const { host, port } of hosts) {
    if (seen.has(`${host}:${port}`)) fail(`host ${host}:${port} is named twice`);
    seen.add(`${host}:${port}`);
  }
  if (parts.path.includes('/')) fail(`database name may not contain "/", got ${JSON.stringify(parts.path)}`);

  const { connection, options } = readUrlOptions(parts.params, POSTGRES_CONNECTION_OPTIONS, table, fail);
  return {
    kind: 'postgres',
    shown: problems.shown,
    hosts,
    user: parts.user,
    password: parts.password,
    database: parts.path === '' ? undefined : parts.path,
    tls: postgresTls(connection, fail),
    connectTimeoutMs: connection.connectTimeoutMs,
    applicationName: connection.applicationName,
    options,
    refuse: problems.refuse,
  };
}

/** libpq's sslmode semantics, without `prefer`/`allow` (no silent fallback to plain text). */
function postgresTls(o: OptionValues<typeof POSTGRES_CONNECTION_OPTIONS>, fail: (what: string) => never): SqlTls | undefined {
  const file = (option: 'sslrootcert' | 'sslcert' | 'sslkey'): TlsFile | undefined => {
    const path = o[option];
    if (path === undefined) return undefined;
    if (o.sslmode === 'disable') fail(`${option} needs sslmode=require, verify-ca or verify-full (sslmode is disable)`);
    return { option, path };
  };
  const ca = file('sslrootcert');
  const cert = file('sslcert');
  const key = file('sslkey');
  if ((cert === undefined) !== (key === undefined)) fail('sslcert and sslkey must be given together');
  const files = { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
  switch (o.sslmode) {
    case 'disable':
      return undefined;
    case 'require':
      // libpq: encrypted, server not verified — unless a root certificate is given, then its chain is.
      return { verify: ca ? 'chain' : 'none', ...files };
    case 'verify-ca':
      if (!ca) fail('sslmode=verify-ca needs sslrootcert (the CA that signed the server)');
      return { verify: 'chain', ...files };
    default:
      return { verify: 'full', ...files };
  }
}
