/**
 * SQLite URLs: `sqlite:PATH` or `sqlite://PATH` (relative to the working directory, or absolute;
 * percent-encoded characters decoded), with the options of the URL's user only — SQLite has no
 * connection options. An in-memory database is refused: nothing baton keeps in SQLite is private to one
 * process.
 */
import type { OptionTable } from '../url-options.js';
import { readOptions } from '../url-options.js';
import { splitFileUrl, type ParsedUrl, type UrlProblems } from '../url-parts.js';

export interface SqliteUrl<O extends OptionTable = OptionTable> extends ParsedUrl<O> {
  readonly kind: 'sqlite';
  /** The database file, as written (a relative path is the driver's to resolve, against the working directory). */
  readonly file: string;
}

/** @throws through `problems.fail`, naming what is wrong. */
export function readSqliteUrl<O extends OptionTable>(url: string, problems: UrlProblems, table: O): SqliteUrl<O> {
  const { fail } = problems;
  const { path, params } = splitFileUrl(url, fail);
  if (path === '') fail('missing file path; expected "sqlite:./baton.db"');
  if (path === ':memory:') fail('an in-memory SQLite database cannot be shared by processes; name a file such as "sqlite:./baton.db"');
  return { kind: 'sqlite', shown: problems.shown, file: path, options: readOptions(params, table, Object.keys(table), fail), refuse: problems.refuse };
}
