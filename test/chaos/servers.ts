/**
 * Private store servers for the chaos harness: each on its own ports with its data in a temp dir, never
 * the shared test services, so that crashing and restarting them disturbs nobody. A server is started as
 * the leader of its own process group, so stop() kills it with everything it forked.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPrivatePostgres } from '../helpers/postgres.js';

export type ChaosStoreKind = 'memory' | 'sqlite' | 'postgres' | 'mysql' | 'redis' | 'etcd' | 'zookeeper';
export const CHAOS_STORE_KINDS: readonly ChaosStoreKind[] = ['memory', 'sqlite', 'postgres', 'mysql', 'redis', 'etcd', 'zookeeper'];

export interface ChaosServer {
  readonly kind: ChaosStoreKind;
  /** The port nodes reach through proxies; 0 for SQLite and memory. */
  readonly port: number;
  /** The URL for `host:port` (a proxy, or the server itself). */
  url(host: string, port: number): string;
  /** Undefined when the server cannot be restarted by us (SQLite, or a server we do not own). */
  readonly restart?: () => Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, timeoutMs: number, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; attempt < 10_000 && Date.now() < deadline; attempt++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, host);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`chaos: nothing listens on ${host}:${port} after ${timeoutMs}ms`);
}

/** A server process in its own process group. */
class Daemon {
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly options: { cwd: string; env?: NodeJS.ProcessEnv; log: string },
  ) {}

  start(): void {
    const child = spawn(this.command, this.args, {
      cwd: this.options.cwd,
      env: { ...process.env, ...this.options.env },
      stdio: ['ignore', 'ignore', 'ignore'],
      detached: true,
    });
    this.#child = child;
    this.#exited = new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
    await Promise.race([this.#exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await this.#exited;
    }
  }
}

export async function startChaosServer(kind: ChaosStoreKind): Promise<ChaosServer> {
  const dir = mkdtempSync(join(tmpdir(), `baton-chaos-${kind}-`));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    switch (kind) {
      case 'memory':
        // In-process nodes share one MemoryBackend (memory-node.ts): nothing to start.
        return { kind, port: 0, url: () => 'memory:', stop: async () => cleanup() };
      case 'sqlite': {
        const file = join(dir, 'baton.db');
        return { kind, port: 0, url: () => `sqlite:${file}`, stop: async () => cleanup() };
      }
      case 'postgres': {
        const port = await freePort();
        const pg = startPrivatePostgres(port);
        if (!pg) throw new Error('chaos: PostgreSQL binaries not found under /usr/lib/postgresql');
        cleanup();
        return {
          kind,
          port,
          url: (h, p) => `postgres://postgres@${h}:${p}/postgres`,
          restart: async () => pg.restart(),
          stop: async () => pg.stop(),
        };
      }
      case 'redis': {
        const port = await freePort();
        // AOF with fsync on every write: what docs/stores/redis.md asks for when "once per tick" matters.
        const daemon = new Daemon(
          'redis-server',
          ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no'],
          { cwd: dir, log: join(dir, 'log') },
        );
        daemon.start();
        await waitForPort(port, 30_000);
        return {
          kind,
          port,
          url: (h, p) => `redis://${h}:${p}/0`,
          restart: async () => {
            await daemon.kill('SIGKILL');
            daemon.start();
            await waitForPort(port, 30_000);
          },
          stop: async () => {
            await daemon.kill('SIGKILL');
            cleanup();
          },
        };
      }
      case 'etcd': {
        const port = await freePort();
        const peer = await freePort();
        const daemon = new Daemon(
          'etcd',
          [
            '--name', 'chaos', '--data-dir', join(dir, 'data'),
            '--listen-client-urls', `http://127.0.0.1:${port}`, '--advertise-client-urls', `http://127.0.0.1:${port}`,
            '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
            '--initial-cluster', `chaos=http://127.0.0.1:${peer}`, '--log-level', 'error',
          ],
          { cwd: dir, log: join(dir, 'log') },
        );
        daemon.start();
        await waitForPort(port, 30_000);
        return {
          kind,
          port,
          url: (h, p) => `etcd://${h}:${p}`,
          restart: async () => {
            await daemon.kill('SIGKILL');
            daemon.start();
            await waitForPort(port, 30_000);
          },
          stop: async () => {
            await daemon.kill('SIGKILL');
            cleanup();
          },
        };
      }
      case 'zookeeper': {
        const script = '/usr/share/zookeeper/bin/zkServer.sh';
        if (!existsSync(script)) throw new Error('chaos: ZooKeeper not installed (/usr/share/zookeeper)');
        const port = await freePort();
        mkdirSync(join(dir, 'data'));
        const cfg = join(dir, 'zoo.cfg');
        writeFileSync(
          cfg,
          [
            'tickTime=500', 'minSessionTimeout=1000', 'maxSessionTimeout=60000', 'initLimit=10', 'syncLimit=5',
            `dataDir=${join(dir, 'data')}`, `clientPort=${port}`, 'clientPortAddress=127.0.0.1', 'admin.enableServer=false',
            '4lw.commands.whitelist=ruok,srvr,stat', '',
          ].join('\n'),
        );
        const daemon = new Daemon(script, ['start-foreground', cfg], {
          cwd: dir,
          env: { ZOOCFGDIR: dir, ZOO_LOG_DIR: dir, JVMFLAGS: '-Xmx256m -XX:+UseSerialGC' },
          log: join(dir, 'log'),
        });
        daemon.start();
        await waitForPort(port, 90_000);
        return {
          kind,
          port,
          url: (h, p) => `zk://${h}:${p}/baton-chaos`,
          restart: async () => {
            await daemon.kill('SIGKILL');
            daemon.start();
            await waitForPort(port, 90_000);
          },
          stop: async () => {
            await daemon.kill('SIGKILL');
            cleanup();
          },
        };
      }
      case 'mysql': {
        const port = await freePort();
        const data = join(dir, 'data');
        execFileSync(
          'mariadb-install-db',
          ['--no-defaults', `--datadir=${data}`, '--user=root', '--skip-test-db', '--auth-root-authentication-method=normal'],
          { stdio: 'ignore', cwd: dir, timeout: 120_000 },
        );
        const daemon = new Daemon(
          '/usr/sbin/mariadbd',
          [
            '--no-defaults', `--datadir=${data}`, `--port=${port}`, '--bind-address=127.0.0.1', `--socket=${join(dir, 'sock')}`,
            `--pid-file=${join(dir, 'pid')}`, '--user=root', '--skip-grant-tables', '--skip-log-bin', '--innodb-buffer-pool-size=32M',
            '--performance-schema=OFF', '--skip-name-resolve',
          ],
          { cwd: dir, log: join(dir, 'log') },
        );
        daemon.start();
        await waitForPort(port, 60_000);
        const mysql = await import('mysql2/promise');
        const conn = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root' });
        await conn.query('CREATE DATABASE IF NOT EXISTS chaos');
        await conn.end();
        return {
          kind,
          port,
          url: (h, p) => `mysql://root@${h}:${p}/chaos`,
          restart: async () => {
            await daemon.kill('SIGKILL');
            daemon.start();
            await waitForPort(port, 60_000);
          },
          stop: async () => {
            await daemon.kill('SIGKILL');
            cleanup();
          },
        };
      }
    }
  } catch (error) {
    cleanup();
    throw error;
  }
}

/** A server we do not own, given by URL: reached through proxies, never restarted. */
export function externalServer(url: string): { server: ChaosServer; kind: ChaosStoreKind } {
  const scheme = url.slice(0, Math.max(0, url.indexOf(':'))).toLowerCase();
  const kinds: Record<string, ChaosStoreKind> = {
    sqlite: 'sqlite', postgres: 'postgres', postgresql: 'postgres', mysql: 'mysql', mariadb: 'mysql', redis: 'redis', etcd: 'etcd', zk: 'zookeeper',
  };
  const kind = kinds[scheme];
  if (!kind) throw new Error(`chaos: unsupported store URL ${JSON.stringify(url)}`);
  if (kind === 'sqlite') return { kind, server: { kind, port: 0, url: () => url, stop: async () => undefined } };
  const parsed = new URL(url);
  const defaults: Record<string, number> = { postgres: 5432, mysql: 3306, redis: 6379, etcd: 2379, zookeeper: 2181 };
  const port = parsed.port ? Number(parsed.port) : (defaults[kind] as number);
  if (parsed.hostname !== '127.0.0.1' && parsed.hostname !== 'localhost') {
    throw new Error(`chaos: the store must be on this machine's loopback (127.0.0.1), got ${parsed.hostname}`);
  }
  return {
    kind,
    server: {
      kind,
      port,
      url: (h, p) => {
        const copy = new URL(url);
        copy.hostname = h;
        copy.port = String(p);
        return copy.toString();
      },
      stop: async () => undefined,
    },
  };
}
