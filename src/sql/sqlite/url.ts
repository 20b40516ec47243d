/**
 * SQLite URLs: `sqlite:PATH` or `sqlite://PATH` (relative to the working directory, or absolute;
 * percent-encoded characters decoded), with the options of the URL's user only — SQLite has no
 * connection options. An in-memory database is refused: nothing baton keeps in SQLite is private to one
 * process.
 */
import type { OptionTable, OptionValues } from '../url-options.js';
import { readOptions } from '../url-options.js';
import { splitFileUrl, type UrlProblems } from '../url-parts.js';

export interface SqliteUrl<O extends OptionTable = OptionTable> {
  readonly kind: 'sqlite';
  readonly shown: string;
  /** The database file, as written (relative paths are resolved by the driver against the working directory). */
  readonly file: string;
  readonly options: OptionValues<O>;
  readonly refuse: UrlProblems['refuse'];
}

/** @throws through `problems.fail`, naming what is wrong. */
export function readSqliteUrl<O extends OptionTable>(url: string, problems: UrlProblems, table: O): SqliteUrl<O> {
  const { fail } = problems;
  const { path, params } = splitFileUrl(url, fail);
  if (path === '') fail('missing file path; expected "sqlite:./baton.db"');
  if (path === ':memory:') fail('an in-memory SQLite database cannot be shared by processes; name a file such as "sqlite:./baton.db"');
  return { kind: 'sqlite', shown: problems.shown, file: path, options: readOptions(params, table, Object.keys(table), fail), refuse: problems.refuse };
}
