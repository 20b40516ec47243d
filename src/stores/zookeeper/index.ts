/**
 * Opens the ZooKeeper store from a URL:
 *
 * `zk://[user:password@]host[:port][,host[:port]...][/chroot][?option=value&...]`
 *
 * - `user:password`: digest authentication (percent-encode special characters); nodes are then
 *   created with the creator-only ACL.
 * - hosts: the ensemble, port 2181 by default.
 * - `/chroot`: the parent path of every cluster, default `/baton`.
 * - options: `sessionTimeoutMs` (default 30000), `requestTimeoutMs` (2000), `connectTimeoutMs`
 *   (10000), `reconnectDelayMs` (250), `crashCheckMs` (500). See {@link ZookeeperStoreOptions}.
 *
 * TLS is not available: node-zookeeper-client 1.1 speaks plain TCP only, so `tls`/`secure` options are
 * refused rather than silently ignored.
 */
import { StoreUrlError } from '../../core/errors.js';
import type { Store } from '../contract.js';
import { redactUrl } from '../../core/redact.js';
import type { OpenStoreOptions } from '../contract.js';
import type { ZookeeperStoreOptions } from './zookeeper-store.js';

export type { ZookeeperStoreOptions } from './zookeeper-store.js';

type UrlOptions = Omit<ZookeeperStoreOptions, 'cluster' | 'clock'>;

const NUMERIC_OPTIONS = {
  sessionTimeoutMs: [1000, 600_000],
  requestTimeoutMs: [50, 60_000],
  connectTimeoutMs: [100, 600_000],
  reconnectDelayMs: [0, 60_000],
  crashCheckMs: [10, 60_000],
} as const satisfies Record<string, readonly [number, number]>;
type NumericOption = keyof typeof NUMERIC_OPTIONS;

export async function openZookeeperStore(url: string, options: OpenStoreOptions): Promise<Store> {
  const parsed = parseZookeeperUrl(url);
  const { ZookeeperStore } = await import('./zookeeper-store.js');
  return ZookeeperStore.open({ ...parsed, cluster: options.cluster, ...(options.clock ? { clock: options.clock } : {}) });
}

/** Parses and validates a `zk://` URL. @throws StoreUrlError naming the URL (password redacted) and the bad part. */
export function parseZookeeperUrl(url: string): UrlOptions {
  const shown = JSON.stringify(redactUrl(url));
  const fail = (what: string): never => {
    throw new StoreUrlError(`zookeeper store ${shown}: ${what}`);
  };
  const match = /^zk:\/\/(?:([^@/?]*)@)?([^/?]*)(\/[^?]*)?(?:\?(.*))?$/i.exec(url);
  if (!match) return fail('expected "zk://[user:password@]host:port[,host:port]/chroot"');
  const [, userinfo, hostList = '', path = '', query = ''] = match;

  const servers = hostList.split(',').map((entry) => {
    const hostPort = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d+))?$/.exec(entry);
    if (!hostPort) return fail(`invalid host ${JSON.stringify(entry)}; expected host or host:port`);
    const port = hostPort[2] === undefined ? 2181 : Number(hostPort[2]);
    if (port < 1 || port > 65_535) fail(`invalid port ${JSON.stringify(hostPort[2])} in ${JSON.stringify(entry)}`);
    return `${hostPort[1]}:${port}`;
  });
  if (hostList === '') fail('missing host; expected "zk://host:2181/chroot"');

  const chroot = path === '' || path === '/' ? '/baton' : path.replace(/\/$/, '');
  for (const segment of chroot.split('/').slice(1)) {
    if (!/^[\w.~-]+$/.test(segment) || segment === '.' || segment === '..') {
      fail(`invalid chroot ${JSON.stringify(path)}: each segment may hold letters, digits, '.', '_', '~' and '-'`);
    }
  }
  if (/^\/zookeeper(\/|$)/.test(chroot)) fail(`chroot ${JSON.stringify(path)} is inside ZooKeeper's reserved /zookeeper`);

  const result: { -readonly [K in keyof UrlOptions]: UrlOptions[K] } = { servers: servers.join(','), chroot, label: redactUrl(url) };
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    const user = safeDecode(colon < 0 ? userinfo : userinfo.slice(0, colon));
    const password = colon < 0 ? '' : safeDecode(userinfo.slice(colon + 1));
    if (user === undefined || password === undefined) fail('credentials are not valid percent-encoding');
    if (!user || !password) fail('digest authentication needs both a user and a password ("zk://user:password@host/chroot")');
    result.auth = { user: user as string, password: password as string };
  }

  const params = new URLSearchParams(query);
  const seen = new Set<string>();
  for (const [name, raw] of params) {
    if (seen.has(name)) fail(`option "${name}" is given twice`);
    seen.add(name);
    if (name === 'tls' || name === 'secure' || name === 'ssl') {
      fail(`option "${name}": TLS is not supported by the ZooKeeper driver (node-zookeeper-client); use a TLS tunnel or a private network`);
    }
    if (!Object.hasOwn(NUMERIC_OPTIONS, name)) fail(`unknown option "${name}" (known: ${Object.keys(NUMERIC_OPTIONS).join(', ')})`);
    const [min, max] = NUMERIC_OPTIONS[name as NumericOption];
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) {
      fail(`option "${name}" must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    }
    result[name as NumericOption] = value;
  }
  const session = result.sessionTimeoutMs ?? 30_000;
  const request = result.requestTimeoutMs ?? 2000;
  if (request >= session) fail(`requestTimeoutMs (${request}) must be below sessionTimeoutMs (${session})`);
  return result;
}

function safeDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}
