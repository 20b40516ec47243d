/**
 * How a user of the SQL layer tunes PostgreSQL. Typed by shape, not with pg's own types: these types reach
 * the package's public declarations (through the relay's dialects), and a program that does not use
 * PostgreSQL must compile without pg installed.
 */

/** What a statement runner needs of a checked-out pg client (pg's `PoolClient` has this shape). */
export interface PgQueryClient {
  query(text: string, values: unknown[]): Promise<PgQueryResult>;
  query(config: { readonly name: string; readonly text: string; readonly values: unknown[] }): Promise<PgQueryResult>;
}

/** What a statement runner returns (pg's `QueryResult` has this shape). */
export interface PgQueryResult {
  readonly rows: unknown[];
  readonly rowCount: number | null;
}

/** Runs one statement on a checked-out client. */
export type PgRun = (client: PgQueryClient, sql: string, values: unknown[]) => Promise<PgQueryResult>;

/** What a user of PostgreSQL may tune beyond the SQL layer's settings. */
export interface PgTuning {
  /** Server settings for every connection of the pool (sent as `-c name=value` at connect). */
  readonly serverSettings?: Readonly<Record<string, string>>;
  /**
   * pg's pipeline mode: statements issued together are written at once and answered in order. A
   * transaction's BEGIN then goes out with its first statements instead of alone (if BEGIN fails, so do
   * they, and BEGIN's error is the one thrown). Nothing may keep a portal open on such a connection.
   */
  readonly pipeline?: boolean;
  /** How a statement is sent (named, corked …); default `client.query(sql, values)`. Must call pg at once. */
  readonly run?: PgRun;
}
