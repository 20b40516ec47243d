/**
 * The shell of a pooled {@link SqlDatabase}, written once for PostgreSQL and MySQL: a connection is
 * checked out for each transaction (or lone statement) and no one else's statements run on it meanwhile;
 * `fn` throwing rolls the transaction back and is rethrown as it is; a connection whose rollback failed,
 * or whose statement failed with a `connection` error, is dropped instead of going back to the pool. A
 * dialect says how to check out, send, begin and give back (postgres/database.ts, mysql/database.ts).
 */
import type { SqlDatabase, SqlResult, SqlSession } from './database.js';
import { ignoreError } from './database.js';
import { SqlError } from './errors.js';
import type { SqlKind } from './schemes.js';

export abstract class PooledDatabase<C> implements SqlDatabase {
  abstract readonly kind: SqlKind;
  readonly label: string;

  constructor(label: string) {
    this.label = label;
  }

  async transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T> {
    const connection = await this.checkout();
    let broken = false;
    try {
      const begin = this.begin(connection);
      // Pipelined, BEGIN goes out with the first statements: if it fails, so do they, and its error is the one thrown.
      if (this.pipelined) begin.catch(ignoreError);
      else await begin;
      const result = await fn({ query: (sql, values = []) => this.send(connection, sql, values) }).finally(() => begin);
      await this.send(connection, 'COMMIT', []);
      return result;
    } catch (error) {
      // A failed rollback means the connection is gone: it is dropped, not given back.
      broken = !(await this.#rollback(connection));
      throw error;
    } finally {
      this.giveBack(connection, broken);
    }
  }

  async query(sql: string, values: readonly unknown[] = []): Promise<SqlResult> {
    const connection = await this.checkout();
    let broken = false;
    try {
      return await this.send(connection, sql, values);
    } catch (error) {
      broken = error instanceof SqlError && error.failure === 'connection';
      throw error;
    } finally {
      this.giveBack(connection, broken);
    }
  }

  abstract close(): Promise<void>;

  /** True when statements issued together are sent at once (BEGIN is then not awaited alone). */
  protected get pipelined(): boolean {
    return false;
  }

  /** A connection for this caller alone. @throws SqlError (`connecting`). */
  protected abstract checkout(): Promise<C>;
  /** Back to the pool, or destroyed when `broken`. */
  protected abstract giveBack(connection: C, broken: boolean): void;
  /** Runs one statement. @throws SqlError. */
  protected abstract send(connection: C, sql: string, values: readonly unknown[]): Promise<SqlResult>;
  /** Opens a transaction on `connection` (BEGIN and its settings). */
  protected abstract begin(connection: C): Promise<unknown>;

  /** Rolls back; false when that failed (the connection is then unusable). */
  #rollback(connection: C): Promise<boolean> {
    return this.send(connection, 'ROLLBACK', []).then(
      () => true,
      () => false,
    );
  }
}
