/** Test helpers for the PostgreSQL store: cleaning the shared database, and a private server to restart. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** Deletes every row of `clusters` from the store's tables in `schema` (default `baton`). */
export async function dropPostgresClusters(url: string, clusters: readonly string[], schema = 'baton'): Promise<void> {
  if (clusters.length === 0) return;
  const server = new URL(url);
  server.search = '';
  const client = new pg.Client({ connectionString: server.toString() });
  client.on('error', () => undefined); // a test helper: a dropped connection shows up as a failed query
  await client.connect();
  try {
    for (const table of ['owners', 'sessions', 'records']) {
      await client.query(`DELETE FROM "${schema}".${table} WHERE cluster = ANY($1::text[])`, [clusters]);
    }
  } finally {
    await client.end();
  }
}

/** A throw-away PostgreSQL server of our own (never the shared one), for tests that restart or kill it. */
export interface PrivatePostgres {
  readonly port: number;
  readonly url: string;
  restart(): void;
  /** Kills the server at once (`-m immediate`: no shutdown checkpoint, like a crash) and starts it again. */
  crash(): void;
  stop(): void;
}

/**
 * Starts a private server with the Debian binaries in a temp dir, or returns undefined when they are not
 * installed. As root the server runs as the `postgres` user (initdb refuses root).
 */
export function startPrivatePostgres(port: number, settings: Readonly<Record<string, string>> = {}): PrivatePostgres | undefined {
  const root = '/usr/lib/postgresql';
  const version = existsSync(root) ? readdirSync(root).sort().at(-1) : undefined;
  const bin = version ? join(root, version, 'bin') : undefined;
  if (!bin || !existsSync(join(bin, 'initdb'))) return undefined;
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'baton-pg-'));
  if (asRoot) execFileSync('chown', ['postgres', dir]);
  const run = (tool: string, args: string[]) =>
    execFileSync(asRoot ? 'runuser' : join(bin, tool), asRoot ? ['-u', 'postgres', '--', join(bin, tool), ...args] : args, {
      stdio: 'ignore',
      cwd: dir,
    });
  const data = join(dir, 'data');
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const extra = Object.entries(settings).map(([name, value]) => ` -c ${name}=${value}`).join('');
  const ctl = (...args: string[]) =>
    run('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off${extra}`, ...args]);
  ctl('start');
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    restart: () => ctl('restart', '-m', 'fast'),
    crash: () => {
      ctl('stop', '-m', 'immediate');
      ctl('start');
    },
    stop: () => {
      try {
        ctl('stop', '-m', 'immediate');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
