/**
 * The target side of a sync: its cursor row, its rows and its rejects, written together.
 *
 * Guarantees:
 * - **Fenced.** The cursor row carries the fencing token of the last owner that wrote it. A run first
 *   claims the row (writes its token there, refused when a greater one is stored); every page then
 *   commits its rows, its rejects and the new cursor in ONE transaction that re-checks the token under
 *   the row's lock and writes the cursor with `WHERE token <= ours`. Once a newer owner has claimed the
 *   row, nothing an older owner sends lands: its transaction rolls back with NotOwnerError.
 * - **Never backwards.** For ordered cursors the stored cursor becomes max(stored, page's), so a page of
 *   old records (a replay, an out-of-order page, a lookback) is upserted but cannot move it back.
 * - **Idempotent.** Rows are upserted by key (with `version`: never replaced by an older copy); rejects
 *   are keyed by a hash of the raw record, so a record fetched twice is stored once (`seen` counts).
 * The cursor table, not the baton store, is the source of truth for where a sync stands.
 */
import { createHash } from 'node:crypto';
import { ConfigError, NotOwnerError } from '../core/errors.js';
import { laterOf, type CursorStrategy, type CursorValue } from './cursor.js';
import type { SqlSession } from '../sql/database.js';
import type { SqlDialect, SqlValue, SyncTables } from './dialects/dialect.js';
import type { ResolvedOptions } from './options.js';
import { SyncTargetError } from './errors.js';

/** A record that failed validation or mapping, as stored in the rejects table. */
export interface Reject {
  readonly fingerprint: string;
  readonly recordKey: string | null;
  readonly reason: string;
  readonly raw: string;
}

/** A mapped row, ready for the upsert (values in `columns` order, converted for the driver). */
export type PreparedRow = readonly SqlValue[];

export class SyncTarget {
  readonly #dialect: SqlDialect;
  readonly #tables: SyncTables;
  readonly #strategy: CursorStrategy;
  readonly #label: string;

  constructor(dialect: SqlDialect, options: ResolvedOptions) {
    this.#dialect = dialect;
    this.#strategy = options.strategy;
    this.#label = options.label;
    this.#tables = {
      cursor: options.cursorTable,
      rejects: options.rejectsTable,
      target: options.table,
      columns: options.columns,
      key: options.key,
      version: options.version,
    };
  }

  get dialect(): SqlDialect {
    return this.#dialect;
  }

  /**
   * Creates the cursor and rejects tables when missing and checks that the target table has every column.
   * @throws SyncTargetError naming what is missing.
   */
  async ensureSchema(): Promise<void> {
    const { statements } = this.#dialect;
    // Several nodes starting at once race on CREATE TABLE IF NOT EXISTS (PostgreSQL can then fail with a
    // duplicate catalog row): the loser simply tries again and finds the table.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#dialect.exec(statements.createCursorTable(this.#tables.cursor));
        await this.#dialect.exec(statements.createRejectsTable(this.#tables.rejects));
        break;
      } catch (error) {
        if (attempt >= 3) throw error;
      }
    }
    const needs = `target table ${this.#tables.target} must exist with columns ${this.#tables.columns.join(', ')} and a primary key or unique index on exactly (${this.#tables.key.join(', ')})`;
    let covered: boolean;
    try {
      covered = await this.#dialect.transaction(async (tx) => {
        await tx.query(statements.probeTarget(this.#tables));
        const probe = statements.probeKey(this.#tables);
        const { rows } = await tx.query(probe.sql, probe.params);
        return probe.keyCovered ? probe.keyCovered(rows) : true;
      });
    } catch (error) {
      throw new SyncTargetError(`${this.#label}: ${needs}: ${(error as Error).message}`, { cause: error });
    }
    if (!covered) throw new SyncTargetError(`${this.#label}: ${needs}: no such key`);
  }

  /**
   * Starts a run: writes `token` into the sync's cursor row (created when absent) and returns the stored
   * cursor. From this commit on, no page of an older owner can land.
   * @throws NotOwnerError when the row holds a greater token.
   */
  async claim(name: string, token: bigint, node: string | null, now: number): Promise<CursorValue | null> {
    const { statements } = this.#dialect;
    return this.#dialect.transaction(async (tx) => {
      await tx.query(statements.insertCursorIfAbsent(this.#tables.cursor), [name, now]);
      const row = await this.#lockCursor(tx, name, token);
      await this.#writeCursor(tx, name, token, node, now, row.text);
      return row.cursor;
    });
  }

  /**
   * Commits one page: its rows, its rejects and the cursor, in one transaction, fenced by `token`.
   * Returns the cursor now stored (for ordered kinds: the larger of the stored one and `cursor`).
   * @throws NotOwnerError (nothing written) when a newer owner has claimed the sync; SyncTargetError.
   */
  async commitPage(
    name: string,
    token: bigint,
    node: string | null,
    page: { readonly rows: readonly PreparedRow[]; readonly rejects: readonly Reject[]; readonly cursor: CursorValue | null },
    now: number,
  ): Promise<CursorValue | null> {
    const { statements, maxParams } = this.#dialect;
    return this.#dialect.transaction(async (tx) => {
      // The token is checked first, under the row's lock: a stale owner writes nothing at all.
      const stored = await this.#lockCursor(tx, name, token);
      const cursor = laterOf(this.#strategy, stored.cursor, page.cursor);
      const width = this.#tables.columns.length;
      const perStatement = Math.max(1, Math.min(1000, Math.floor(maxParams / width)));
      for (let i = 0; i < page.rows.length; i += perStatement) {
        const chunk = page.rows.slice(i, i + perStatement);
        await tx.query(statements.upsertRows(this.#tables, chunk.length), chunk.flat());
      }
      for (let i = 0; i < page.rejects.length; i += 500) {
        const chunk = page.rejects.slice(i, i + 500);
        await tx.query(
          statements.upsertRejects(this.#tables.rejects, chunk.length),
          chunk.flatMap((r) => [name, r.fingerprint, r.recordKey, r.reason, r.raw, now, now]),
        );
      }
      await this.#writeCursor(tx, name, token, node, now, encodeCursor(cursor));
      return cursor;
    });
  }

  /** Reads the cursor row under lock. @throws NotOwnerError when its token is greater than ours. */
  async #lockCursor(tx: SqlSession, name: string, token: bigint): Promise<{ cursor: CursorValue | null; text: string | null }> {
    const [row] = (await tx.query(this.#dialect.statements.lockCursor(this.#tables.cursor), [name])).rows;
    if (!row) {
      throw new SyncTargetError(`${this.#label}: the cursor row "${name}" is missing from ${this.#tables.cursor} (deleted during the run?); the next run recreates it`);
    }
    const stored = BigInt(String(row.token));
    if (stored > token) throw this.#notOwner(name, token, stored, row.node);
    const text = row.cursor_value === null || row.cursor_value === undefined ? null : String(row.cursor_value);
    return { cursor: decodeCursor(text, this.#strategy, this.#label, this.#tables.cursor, name), text };
  }

  async #writeCursor(tx: SqlSession, name: string, token: bigint, node: string | null, now: number, text: string | null): Promise<void> {
    const t = this.#dialect.value(token);
    const { affected: matched } = await tx.query(this.#dialect.statements.updateCursor(this.#tables.cursor), [text, t, now, node, name, t]);
    // Unreachable while the row is locked, and kept as the fence of last resort.
    if (matched !== 1) throw this.#notOwner(name, token, undefined, undefined);
  }

  #notOwner(name: string, token: bigint, stored: bigint | undefined, node: unknown): NotOwnerError {
    const by = stored === undefined ? 'a newer token' : `token ${stored}${node ? ` (node ${String(node)})` : ''}`;
    return new NotOwnerError(
      `${this.#label}: the cursor row "${name}" is fenced by ${by}; this run's token ${token} is older, so nothing of it was committed`,
    );
  }
}

/** The cursor as stored: JSON text, or null. */
export function encodeCursor(cursor: CursorValue | null): string | null {
  return cursor === null ? null : JSON.stringify(cursor);
}

/** @throws ConfigError when the stored cursor does not fit the configured kind (the kind was changed). */
export function decodeCursor(text: string | null, strategy: CursorStrategy, label: string, table: string, name: string): CursorValue | null {
  if (text === null) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const fits =
    typeof value === 'object' &&
    value !== null &&
    (strategy.kind === 'updatedSince' ? 'ts' in value && 'id' in value : strategy.kind === 'increasingId' ? 'id' in value && !('ts' in value) : 'token' in value);
  if (!fits) {
    throw new ConfigError(
      `${label}: the stored cursor ${JSON.stringify(text.slice(0, 100))} of "${name}" in ${table} does not fit source.cursor.kind "${strategy.kind}"; ` +
        'if the kind was changed on purpose, set that row\'s cursor_value to NULL to start over',
    );
  }
  return value as CursorValue;
}

/** A stable fingerprint of a raw record (sha256 of its JSON), the key of its rejects row. */
export function fingerprintOf(raw: string): string {
  return createHash('sha256').update(raw).digest('hex');
}
