/**
 * Opens a SQLite database file the way every baton user of SQLite needs it (the store, the HTTP sync, the
 * relay): WAL, so readers run beside the one writer; `synchronous = FULL`, so a commit survives power
 * loss, not only a process crash; a busy timeout, how long a writer waits for another process's lock.
 * `better-sqlite3` is loaded here, only when a file is opened.
 *
 * Non-guarantees: better-sqlite3 is synchronous: waiting for another process's write lock blocks the
 * event loop for up to the busy timeout.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { loadSqlite } from '../drivers.js';
import { toSqlError } from '../errors.js';

/**
 * Opens (creating if needed) `file`.
 * @throws SqlError (`connecting`) naming the file, e.g. when its directory does not exist.
 */
export async function openSqliteFile(file: string, options: { readonly busyTimeoutMs: number; readonly label: string }): Promise<BetterSqlite3.Database> {
  const Database = await loadSqlite(options.label);
  let db: BetterSqlite3.Database | undefined;
  try {
    db = new Database(file, { timeout: options.busyTimeoutMs });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    return db;
  } catch (error) {
    db?.close();
    throw toSqlError('sqlite', options.label, error, true);
  }
}
