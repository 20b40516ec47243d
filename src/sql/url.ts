/**
 * The one entry point for SQL URLs: the scheme picks the dialect's parser (postgres/url.ts, mysql/url.ts,
 * sqlite/url.ts), which reads the dialect's connection options (TLS above all) and the options of the
 * URL's user, and refuses every other option by name. Stores, the HTTP sync and the relay call it with
 * their own label, error class and option table.
 */
import { describe } from '../core/duration.js';
import type { BatonError } from '../core/errors.js';
import { readMysqlUrl, type MysqlUrl } from './mysql/url.js';
import { readPostgresUrl, type PostgresUrl } from './postgres/url.js';
import { schemeOf, schemesOf, sqlKindOf, type SqlKind } from './schemes.js';
import { readSqliteUrl, type SqliteUrl } from './sqlite/url.js';
import type { OptionTable } from './url-options.js';
import { urlProblems, type UrlReader } from './url-parts.js';

export type { MysqlUrl } from './mysql/url.js';
export type { PostgresUrl } from './postgres/url.js';
export type { SqliteUrl } from './sqlite/url.js';

/** A parsed SQL URL of any dialect; `kind` tells which. */
export type SqlUrl<O extends OptionTable = OptionTable> = PostgresUrl<O> | MysqlUrl<O> | SqliteUrl<O>;

/** Who reads the URL, which dialects they take, and their own options. */
export interface SqlUrlReader<K extends SqlKind, O extends OptionTable> extends UrlReader {
  /** The dialects accepted; default all. */
  readonly kinds?: readonly K[];
  /** Options of this reader, accepted besides the dialect's connection options. Default none. */
  readonly options?: O;
  /**
   * Accept a list of hosts (`postgres://h1:5432,h2:5433/db`): the reader connects to them in turn and
   * keeps the one it needs (the PostgreSQL store: the read-write one). Default false: a list is refused.
   */
  readonly multiHost?: boolean;
}

const ALL_KINDS: readonly SqlKind[] = ['postgres', 'mysql', 'sqlite'];

/**
 * Parses and validates a SQL URL; reads no file and loads no driver.
 * @throws `reader.error` naming the URL (password redacted) and what is wrong with it.
 */
export function parseSqlUrl<K extends SqlKind = SqlKind, O extends OptionTable = Record<never, never>>(
  url: unknown,
  reader: SqlUrlReader<K, O>,
): Extract<SqlUrl<O>, { readonly kind: K }> {
  const kinds: readonly SqlKind[] = reader.kinds ?? ALL_KINDS;
  const table = (reader.options ?? {}) as O;
  const kind = sqlKindOf(url);
  if (typeof url !== 'string' || kind === undefined || !kinds.includes(kind)) {
    throw schemeError(url, kinds, reader);
  }
  const problems = urlProblems(url, reader);
  const parsed: SqlUrl<O> =
    kind === 'postgres' ? readPostgresUrl(url, problems, table, reader.multiHost ?? false) : kind === 'mysql' ? readMysqlUrl(url, problems, table) : readSqliteUrl(url, problems, table);
  return parsed as Extract<SqlUrl<O>, { readonly kind: K }>;
}

function schemeError(url: unknown, kinds: readonly SqlKind[], reader: UrlReader): BatonError {
  const schemes = kinds.flatMap(schemesOf);
  if (kinds.length === 1 && typeof url === 'string') {
    return urlProblems(url, reader).refuse(`scheme must be ${schemes.map((s) => `"${s}:"`).join(' or ')}, got "${schemeOf(url)}:"`);
  }
  const forms = schemes.map((s) => (s === 'sqlite' ? 'sqlite:' : `${s}://`));
  const list = forms.length > 1 ? `${forms.slice(0, -1).join(', ')} or ${forms.at(-1)}` : forms.join('');
  const got = typeof url === 'string' ? JSON.stringify(urlProblems(url, reader).shown) : describe(url);
  return new reader.error(`${reader.label} must be a ${list} URL, got ${got}`);
}
