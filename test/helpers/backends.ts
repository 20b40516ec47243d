/**
 * The server backends of the test machine (scripts/services.sh starts them), with URLs that can point at
 * any host:port — the real server, or a TcpProxy in front of it for fault injection.
 */
import { join } from 'node:path';

export interface ServerBackend {
  readonly kind: 'postgres' | 'mysql' | 'redis' | 'etcd' | 'zookeeper';
  readonly port: number;
  url(host: string, port: number): string;
}

export const SERVER_BACKENDS: readonly ServerBackend[] = [
  { kind: 'postgres', port: 5432, url: (h, p) => `postgres://postgres@${h}:${p}/test` },
  { kind: 'mysql', port: 3306, url: (h, p) => `mysql://root@${h}:${p}/test` },
  { kind: 'redis', port: 6379, url: (h, p) => `redis://${h}:${p}/0` },
  { kind: 'etcd', port: 2379, url: (h, p) => `etcd://${h}:${p}` },
  { kind: 'zookeeper', port: 2181, url: (h, p) => `zk://${h}:${p}/baton-test` },
];

/**
 * The stores the issue names for scheduler tests on real backends — SQLite (a file in `dir`), PostgreSQL
 * and Redis — as `{ kind, url }` for `describe.each`.
 */
export function sqlitePostgresRedis(dir: string): { kind: string; url: string }[] {
  const url = (kind: ServerBackend['kind']) => {
    const backend = SERVER_BACKENDS.find((b) => b.kind === kind) as ServerBackend;
    return backend.url('127.0.0.1', backend.port);
  };
  return [
    { kind: 'sqlite', url: `sqlite:${join(dir, 'baton.db')}` },
    { kind: 'postgres', url: url('postgres') },
    { kind: 'redis', url: url('redis') },
  ];
}
