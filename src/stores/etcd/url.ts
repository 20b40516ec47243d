/**
 * Parses and validates an etcd store URL:
 *
 *   etcd://[user:password@]host[:port][,host[:port]...][?option=value&...]
 *   etcds://…   the same over TLS
 *
 * Options: `prefix` (key prefix, default `/baton`), `timeoutMs` (deadline of every call, default 2000),
 * `crashCheckMs` (how often a handle looks for crashed processes on its host, default 500; 0 turns it off),
 * and for `etcds:` only `caFile`, `certFile`, `keyFile` (PEM files; client certificate and key go together).
 * Nothing here touches the network or the files: the store reads the files when it opens.
 */
import { StoreUrlError } from '../../core/errors.js';
import { redactUrl } from '../../core/redact.js';

export const DEFAULT_PORT = 2379;
export const DEFAULT_PREFIX = '/baton';
export const DEFAULT_TIMEOUT_MS = 2000;
export const DEFAULT_CRASH_CHECK_MS = 500;

export interface EtcdUrl {
  /** `host:port` endpoints, IPv6 hosts in brackets. */
  readonly endpoints: readonly string[];
  readonly tls: boolean;
  /** etcd user name and password (etcd's own authentication), when the URL has them. */
  readonly auth?: { readonly username: string; readonly password: string };
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  /** Every key lives under `<prefix>/<cluster>/`. Starts with '/', no trailing '/'. */
  readonly prefix: string;
  readonly timeoutMs: number;
  /** Period of the same-host crash check; 0: off. */
  readonly crashCheckMs: number;
  /** The URL with its password replaced, for messages. */
  readonly shown: string;
}

const OPTIONS = ['prefix', 'timeoutMs', 'crashCheckMs', 'caFile', 'certFile', 'keyFile'] as const;
type OptionName = (typeof OPTIONS)[number];

/** @throws StoreUrlError naming the (redacted) URL and the bad part. */
export function parseEtcdUrl(url: string): EtcdUrl {
  const shown = redactUrl(url);
  const fail = (what: string): never => {
    throw new StoreUrlError(`etcd store ${JSON.stringify(shown)}: ${what}`);
  };
  const match = /^(etcds?):\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/i.exec(url);
  if (!match) return fail('expected "etcd://host:port[,host:port][?prefix=/baton]" or "etcds://…" for TLS');
  const [, scheme = '', authority = '', path = '', query = ''] = match;
  const tls = scheme.toLowerCase() === 'etcds';
  if (path !== '' && path !== '/') fail(`unexpected path ${JSON.stringify(path)}; set the key prefix with "?prefix=${path}"`);

  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at) : undefined;
  const hostList = at >= 0 ? authority.slice(at + 1) : authority;
  const auth = userinfo === undefined ? undefined : parseUserinfo(userinfo, fail);
  const endpoints = hostList.split(',').map((h) => parseEndpoint(h.trim(), fail));

  const params = new URLSearchParams(query);
  const seen = new Set<string>();
  for (const name of params.keys()) {
    if (!(OPTIONS as readonly string[]).includes(name)) fail(`unknown option "${name}" (known: ${OPTIONS.join(', ')})`);
    if (seen.has(name)) fail(`option "${name}" given twice`);
    seen.add(name);
  }
  const option = (name: OptionName): string | undefined => params.get(name) ?? undefined;

  const prefix = option('prefix') ?? DEFAULT_PREFIX;
  if (!/^\/[\x21-\x7e]*$/.test(prefix) || prefix.includes('//')) {
    fail(`prefix must start with "/" and hold printable ASCII without spaces or "//", got ${JSON.stringify(prefix)}`);
  }
  const timeout = option('timeoutMs');
  const timeoutMs = timeout === undefined ? DEFAULT_TIMEOUT_MS : Number(timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 60_000) {
    fail(`timeoutMs must be an integer from 100 to 60000, got ${JSON.stringify(timeout)}`);
  }

  const crashCheck = option('crashCheckMs');
  const crashCheckMs = crashCheck === undefined ? DEFAULT_CRASH_CHECK_MS : Number(crashCheck);
  if (!/^\d+$/.test(crashCheck ?? '0') || !Number.isInteger(crashCheckMs) || (crashCheckMs !== 0 && (crashCheckMs < 50 || crashCheckMs > 60_000))) {
    fail(`crashCheckMs must be 0 (off) or an integer from 50 to 60000, got ${JSON.stringify(crashCheck)}`);
  }

  const caFile = option('caFile');
  const certFile = option('certFile');
  const keyFile = option('keyFile');
  for (const [name, value] of [['caFile', caFile], ['certFile', certFile], ['keyFile', keyFile]] as const) {
    if (value === '') fail(`${name} must not be empty`);
    if (value !== undefined && !tls) fail(`${name} needs TLS: use "etcds://" instead of "etcd://"`);
  }
  if ((certFile === undefined) !== (keyFile === undefined)) fail('certFile and keyFile must be given together');

  return {
    endpoints,
    tls,
    ...(auth ? { auth } : {}),
    ...(caFile ? { caFile } : {}),
    ...(certFile ? { certFile } : {}),
    ...(keyFile ? { keyFile } : {}),
    prefix: prefix.replace(/\/+$/, '') || DEFAULT_PREFIX,
    timeoutMs,
    crashCheckMs,
    shown,
  };
}

function parseUserinfo(userinfo: string, fail: (what: string) => never): { username: string; password: string } {
  const colon = userinfo.indexOf(':');
  if (colon < 0) return fail('user given without a password; expected "user:password@"');
  try {
    const username = decodeURIComponent(userinfo.slice(0, colon));
    const password = decodeURIComponent(userinfo.slice(colon + 1));
    if (username === '') return fail('empty user name before ":password@"');
    return { username, password };
  } catch {
    return fail('user or password is not valid percent-encoding');
  }
}

function parseEndpoint(hostPort: string, fail: (what: string) => never): string {
  if (hostPort === '') return fail('missing host; expected "host:port"');
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d+))?$/.exec(hostPort);
  if (!match) return fail(`bad host ${JSON.stringify(hostPort)}; expected "host:port" (IPv6 in brackets)`);
  const [, host = '', portText] = match;
  const port = portText === undefined ? DEFAULT_PORT : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return fail(`bad port in ${JSON.stringify(hostPort)}`);
  return `${host}:${port}`;
}
