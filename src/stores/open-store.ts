/**
 * Chooses a store by URL and loads its driver only then (`better-sqlite3` only for `sqlite:`, `pg` only for
 * `postgres:` …).
 *
 * - `memory:` or `memory:NAME`: an in-process store (one per NAME per process), for tests and simulations.
 * - `sqlite:PATH` (relative or absolute), also `sqlite://PATH`: the embedded default, one host.
 * - `postgres://`, `mysql://` / `mariadb://`, `redis://` / `rediss://` / `redis+sentinel://`, `etcd://` / `etcds://`, `zk://`:
 *   server stores, see docs/stores/.
 */
import { StoreUrlError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import { SQL_SCHEMES, schemeOf, sqlKindOf } from '../sql/schemes.js';
import { parseSqlUrl } from '../sql/url.js';
import type { OpenStoreOptions, Store, StoreKind } from './contract.js';

export type { OpenStoreOptions } from './contract.js';

export type ParsedStoreUrl =
  | { readonly kind: 'memory'; readonly name: string }
  | { readonly kind: 'sqlite'; readonly file: string; readonly pollMs?: number };

/** The schemes of the stores that are not SQL (the SQL ones are sql/schemes.ts's). */
const OTHER_SCHEMES: Readonly<Record<string, StoreKind>> = {
  redis: 'redis',
  rediss: 'redis',
  'redis+sentinel': 'redis',
  etcd: 'etcd',
  etcds: 'etcd',
  zk: 'zookeeper',
};

const KNOWN_SCHEMES = [...Object.keys(SQL_SCHEMES), 'memory', ...Object.keys(OTHER_SCHEMES)].join(', ');

/** The SQLite store's own URL option. */
export const SQLITE_STORE_OPTIONS = { pollMs: { type: 'integer', min: 5, max: 10_000 } } as const;

/** The store kind a URL's scheme names, for the stores that parse their own URLs; undefined for memory: and unknown schemes. */
function serverStoreOf(url: unknown): StoreKind | undefined {
  const kind = sqlKindOf(url);
  if (kind === 'postgres' || kind === 'mysql') return kind;
  return kind === 'sqlite' ? undefined : OTHER_SCHEMES[schemeOf(url)];
}

/** Removes credentials from a store URL so it can be logged or shown (core/redact.ts). */
export const redactStoreUrl = redactUrl;

/** Parses and validates a `memory:` or `sqlite:` URL. @throws StoreUrlError naming the URL and what is wrong. */
export function parseStoreUrl(url: unknown): ParsedStoreUrl {
  if (typeof url !== 'string' || url.trim() === '') {
    throw new StoreUrlError(`store: expected a URL such as "sqlite:./baton.db" or "memory:", got ${JSON.stringify(url)}`);
  }
  const shown = JSON.stringify(redactStoreUrl(url));
  const colon = url.indexOf(':');
  if (colon <= 0) {
    throw new StoreUrlError(`store ${shown}: missing scheme; expected one of ${KNOWN_SCHEMES}`);
  }
  const scheme = schemeOf(url);
  if (scheme === 'memory') {
    const name = url.slice(colon + 1).replace(/^\/\//, '');
    if (!/^[\w.-]*$/.test(name)) {
      throw new StoreUrlError(`store ${shown}: memory store name may hold letters, digits, '.', '_' and '-' only`);
    }
    return { kind: 'memory', name: name || 'default' };
  }
  if (scheme === 'sqlite') {
    const parsed = parseSqlUrl(url, { label: 'sqlite store', error: StoreUrlError, kinds: ['sqlite'], options: SQLITE_STORE_OPTIONS });
    const { pollMs } = parsed.options;
    return { kind: 'sqlite', file: parsed.file, ...(pollMs !== undefined ? { pollMs } : {}) };
  }
  const kind = serverStoreOf(url);
  if (kind) throw new StoreUrlError(`store ${shown}: a ${kind} URL is opened by the ${kind} store, not parsed here`);
  throw new StoreUrlError(`store ${shown}: unknown scheme "${scheme}:" (known: ${KNOWN_SCHEMES})`);
}

/** Opens the store a URL names. @throws StoreUrlError, StoreUnavailableError. */
export async function openStore(url: string, options: OpenStoreOptions): Promise<Store> {
  // Each server store parses its own URL; its module (and driver) is loaded only when its scheme is used.
  switch (serverStoreOf(url)) {
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
