/**
 * The one table of SQL URL schemes: which dialect a `postgres://`, `mysql://` or `sqlite:` URL names.
 * Stores, the HTTP sync and the relay all read it; nobody else compares scheme strings.
 */

/** A SQL dialect baton speaks. */
export type SqlKind = 'postgres' | 'mysql' | 'sqlite';

/** Every accepted scheme (lower case, without the colon) and its dialect. */
export const SQL_SCHEMES: Readonly<Record<string, SqlKind>> = {
  postgres: 'postgres',
  postgresql: 'postgres',
  mysql: 'mysql',
  mariadb: 'mysql',
  sqlite: 'sqlite',
};

/** The schemes of one dialect, as written in messages: `"postgres:" or "postgresql:"`. */
export function schemesOf(kind: SqlKind): string[] {
  return Object.keys(SQL_SCHEMES).filter((scheme) => SQL_SCHEMES[scheme] === kind);
}

/** The scheme of `url`, lower case and without the colon ('' when it has none). */
export function schemeOf(url: unknown): string {
  if (typeof url !== 'string') return '';
  const colon = url.indexOf(':');
  return colon > 0 ? url.slice(0, colon).toLowerCase() : '';
}

/** The dialect a URL names by its scheme, or undefined for any other URL (or a non-string). */
export function sqlKindOf(url: unknown): SqlKind | undefined {
  return Object.hasOwn(SQL_SCHEMES, schemeOf(url)) ? SQL_SCHEMES[schemeOf(url)] : undefined;
}
