/**
 * The docs list exactly the URL options the code accepts: every option of a table in docs/ exists in the
 * SQL layer's or a store's option table, and every option those tables accept is documented.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MYSQL_CONNECTION_OPTIONS } from '../../src/sql/mysql/url.js';
import { POSTGRES_CONNECTION_OPTIONS } from '../../src/sql/postgres/url.js';
import { MYSQL_STORE_OPTIONS } from '../../src/stores/mysql/mysql-url.js';
import { SQLITE_STORE_OPTIONS } from '../../src/stores/open-store.js';
import { POSTGRES_STORE_OPTIONS } from '../../src/stores/postgres/url.js';

/** The rows of the first table after `heading` in a docs page. */
function tableRows(page: string, heading: string): string[][] {
  const lines = readFileSync(new URL(`../../docs/${page}`, import.meta.url), 'utf8').split('\n');
  const start = lines.indexOf(heading);
  if (start < 0) throw new Error(`docs/${page}: no heading "${heading}"`);
  const first = lines.findIndex((line, i) => i > start && line.startsWith('|'));
  const end = lines.findIndex((line, i) => i > first && !line.startsWith('|'));
  return lines
    .slice(first + 2, end < 0 ? undefined : end) // past the header and its |---| line
    .map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim()));
}

/** The option names of an options table: every `name` in its first column. */
function documentedOptions(page: string, heading: string): string[] {
  return tableRows(page, heading)
    .flatMap(([cell = '']) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string))
    .sort();
}

const names = (...tables: object[]) => tables.flatMap((t) => Object.keys(t)).sort();

describe('URL options in the docs', () => {
  it.each([
    ['database-urls.md', '## PostgreSQL', names(POSTGRES_CONNECTION_OPTIONS)],
    ['database-urls.md', '## MySQL / MariaDB', names(MYSQL_CONNECTION_OPTIONS)],
    ['stores/postgres.md', '## URL', names(POSTGRES_CONNECTION_OPTIONS, POSTGRES_STORE_OPTIONS)],
    ['stores/mysql.md', '## URL', names(MYSQL_CONNECTION_OPTIONS, MYSQL_STORE_OPTIONS)],
  ])('docs/%s %s lists exactly the options accepted', (page, heading, accepted) => {
    expect(documentedOptions(page, heading)).toEqual(accepted);
  });

  it('docs/stores.md lists the SQLite store’s options', () => {
    const urls = tableRows('stores.md', '## Choosing a store by URL').map(([cell = '']) => cell);
    const sqliteOptions = urls.filter((url) => url.startsWith('`sqlite:')).flatMap((url) => [...url.matchAll(/[?&](\w+)=/g)].map((m) => m[1] as string));
    expect(sqliteOptions.sort()).toEqual(names(SQLITE_STORE_OPTIONS));
  });
});
