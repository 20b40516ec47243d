/**
 * Where the dialects' SQL text differs in form, not in meaning: parameter placeholders (`$1` on
 * PostgreSQL, `?` on MySQL and SQLite) and identifier quotes (`"` or a backtick). Values always travel as
 * parameters; an identifier reaches SQL text only after its user validated it, and quoted.
 */
import type { SqlKind } from './schemes.js';

/** The placeholder of the `i`-th parameter (from 1): `$i` on PostgreSQL, `?` elsewhere. */
export function placeholder(kind: SqlKind): (i: number) => string {
  return kind === 'postgres' ? (i) => `$${i}` : () => '?';
}

/** `count` placeholders numbered from `first`: `$1, $2, $3` or `?, ?, ?`. */
export function placeholderList(kind: SqlKind, count: number, first = 1): string {
  const p = placeholder(kind);
  return Array.from({ length: count }, (_, i) => p(first + i)).join(', ');
}

/** `(p1, p2), (p3, p4)`: `count` tuples of `width` placeholders, numbered from 1 across the tuples. */
export function valueTuples(kind: SqlKind, count: number, width: number): string {
  return Array.from({ length: count }, (_, r) => `(${placeholderList(kind, width, r * width + 1)})`).join(', ');
}

/** Quotes an identifier, or each part of `schema.table`: `"orders"` or `` `orders` ``; a quote inside is doubled. */
export function quoteIdentifier(kind: SqlKind, name: string): string {
  const quote = kind === 'mysql' ? '`' : '"';
  return name
    .split('.')
    .map((part) => `${quote}${part.replaceAll(quote, quote + quote)}${quote}`)
    .join('.');
}

/** The most parameters one statement may carry: the protocol's 16-bit count, SQLite's default limit since 3.32. */
export const MAX_PARAMETERS: Readonly<Record<SqlKind, number>> = { postgres: 65_535, mysql: 65_535, sqlite: 32_766 };
