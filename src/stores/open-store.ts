/**
 * Chooses a store by URL and loads its driver only then (`better-sqlite3` only for `sqlite:`, `pg` only for
 * `postgres:` …).
 *
 * - `memory:` or `memory:NAME`: an in-process store (one per NAME per process), for tests and simulations.
 * - `sqlite:PATH` (relative or absolute), also `sqlite://PATH`: the embedded default, one host.
 * - `postgres://`, `mysql://` / `mariadb://`, `redis://` / `rediss://`, `etcd://` / `etcds://`, `zk://`:
 *   server stores, see docs/stores/.
 */
import { StoreUrlError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import type { OpenStoreOptions, Store, StoreKind } from './contract.js';

export type { OpenStoreOptions } from './contract.js';

export type ParsedStoreUrl =
  | { readonly kind: 'memory'; readonly name: string }
  | { readonly kind: 'sqlite'; readonly file: string; readonly pollMs?: number };

const SERVER_SCHEMES: Readonly<Record<string, StoreKind>> = {
  postgres: 'postgres',
  postgresql: 'postgres',
  mysql: 'mysql',
  mariadb: 'mysql',
  redis: 'redis',
  rediss: 'redis',
  etcd: 'etcd',
  etcds: 'etcd',
  zk: 'zookeeper',
};

const KNOWN_SCHEMES = ['sqlite', 'memory', ...Object.keys(SERVER_SCHEMES)].join(', ');

/** Removes credentials from a store URL so it can be logged or shown (core/redact.ts). */
export const redactStoreUrl = redactUrl;

/** Parses and validates a store URL. @throws StoreUrlError naming the URL and what is wrong. */
export function parseStoreUrl(url: unknown): ParsedStoreUrl {
  if (typeof url !== 'string' || url.trim() === '') {
    throw new StoreUrlError(`store: expected a URL such as "sqlite:./baton.db" or "memory:", got ${JSON.stringify(url)}`);
  }
  const shown = JSON.stringify(redactStoreUrl(url));
  const colon = url.indexOf(':');
  if (colon <= 0) {
    throw new StoreUrlError(`store ${shown}: missing scheme; expected one of ${KNOWN_SCHEMES}`);
  }
  const scheme = url.slice(0, colon).toLowerCase();
  const rest = url.slice(colon + 1);
  switch (scheme) {
    case 'memory': {
      const name = rest.replace(/^\/\//, '');
      if (!/^[\w.-]*$/.test(name)) {
        throw new StoreUrlError(`store ${shown}: memory store name may hold letters, digits, '.', '_' and '-' only`);
      }
      return { kind: 'memory', name: name || 'default' };
    }
    case 'sqlite': {
      const [pathPart = '', query] = rest.replace(/^\/\//, '').split('?', 2);
      if (pathPart === '') throw new StoreUrlError(`store ${shown}: missing file path; expected "sqlite:./baton.db"`);
      if (pathPart === ':memory:') {
        throw new StoreUrlError(`store ${shown}: an in-memory SQLite database cannot be shared by processes; use "memory:"`);
      }
      const params = new URLSearchParams(query ?? '');
      for (const key of params.keys()) {
        if (key !== 'pollMs') throw new StoreUrlError(`store ${shown}: unknown option "${key}" (known: pollMs)`);
      }
      let file: string;
      try {
        file = decodeURIComponent(pathPart);
      } catch {
        throw new StoreUrlError(`store ${shown}: the file path is not valid percent-encoding`);
      }
      const poll = params.get('pollMs');
      if (poll === null) return { kind: 'sqlite', file };
      const pollMs = Number(poll);
      if (!Number.isInteger(pollMs) || pollMs < 5 || pollMs > 10_000) {
        throw new StoreUrlError(`store ${shown}: pollMs must be an integer from 5 to 10000, got ${JSON.stringify(poll)}`);
      }
      return { kind: 'sqlite', file, pollMs };
    }
    default: {
      const kind = SERVER_SCHEMES[scheme];
      if (kind) throw new StoreUrlError(`store ${shown}: a ${kind} URL is opened by the ${kind} store, not parsed here`);
      throw new StoreUrlError(`store ${shown}: unknown scheme "${scheme}:" (known: ${KNOWN_SCHEMES})`);
    }
  }
}

/** Opens the store a URL names. @throws StoreUrlError, StoreUnavailableError. */
export async function openStore(url: string, options: OpenStoreOptions): Promise<Store> {
  const scheme = typeof url === 'string' ? url.slice(0, Math.max(0, url.indexOf(':'))).toLowerCase() : '';
  // Each server store parses its own URL; its module (and driver) is loaded only when its scheme is used.
  switch (SERVER_SCHEMES[scheme]) {
    case 'postgres':
      return (await import('./postgres/index.js')).openPostgresStore(url, options);
    case 'mysql':
      return (await import('./mysql/index.js')).openMysqlStore(url, options);
    case 'redis':
      return (await import('./redis/index.js')).openRedisStore(url, options);
    case 'etcd':
      return (await import('./etcd/index.js')).openEtcdStore(url, options);
    case 'zookeeper':
      return (await import('./zookeeper/index.js')).openZookeeperStore(url, options);
    default:
      break;
  }
  const parsed = parseStoreUrl(url);
  switch (parsed.kind) {
    case 'memory': {
      const { sharedMemoryBackend } = await import('./memory/memory-store.js');
      return sharedMemoryBackend(parsed.name, options.clock).connect(options.cluster);
    }
    case 'sqlite': {
      const { SqliteStore } = await import('./sqlite/sqlite-store.js');
      return SqliteStore.open({
        file: parsed.file,
        cluster: options.cluster,
        ...(options.clock ? { clock: options.clock } : {}),
        ...(parsed.pollMs ? { pollMs: parsed.pollMs } : {}),
      });
    }
  }
}
