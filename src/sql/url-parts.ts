/**
 * The parts of a SQL URL before any dialect reads them: `scheme://[user[:password]@]host[:port][,host[:port]…][/path][?query]`
 * for a server, `sqlite:PATH[?query]` for a file. User, password and path are percent-decoded; the host
 * list keeps every host written, so a dialect that accepts several (libpq's `h1:5432,h2:5433`) reads them
 * all and one that does not refuses the list in one place.
 *
 * Guarantees: a URL is either split or refused through the caller's error (never a bare TypeError or
 * URIError); every message names the URL through `redactUrl` only, so a password never reaches a message.
 */
import type { BatonError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import type { SqlTls } from './tls.js';
import type { OptionTable, OptionValues } from './url-options.js';

/** Who reads a URL and how it refuses one: `postgres store` with StoreUrlError, `http sync: target.db` with ConfigError … */
export interface UrlReader {
  /** Opens every message, before the redacted URL: `postgres store "postgres://u:***@h/db": …`. */
  readonly label: string;
  /** The error a bad URL raises. */
  readonly error: new (message: string) => BatonError;
}

/** A URL's redacted form and the errors naming it. */
export interface UrlProblems {
  /** The URL with its password (and secret-named options) replaced by `***`. */
  readonly shown: string;
  /** The error for `what` is wrong with this URL: `<label> "<shown>": <what>`. */
  refuse(what: string): BatonError;
  /** Throws {@link refuse}. */
  fail(what: string): never;
}

export function urlProblems(url: string, reader: UrlReader): UrlProblems {
  const shown = redactUrl(url);
  const refuse = (what: string) => new reader.error(`${reader.label} ${JSON.stringify(shown)}: ${what}`);
  return {
    shown,
    refuse,
    fail: (what) => {
      throw refuse(what);
    },
  };
}

/** What every parsed SQL URL holds besides its dialect's parts. */
export interface ParsedUrl<O extends OptionTable> {
  /** The URL with its password (and secret-named options) replaced by `***`, for messages. */
  readonly shown: string;
  /** The options of the URL's user (a store, the HTTP sync, the relay). */
  readonly options: OptionValues<O>;
  /** The error for a problem found later with this URL (an unreadable certificate file). */
  readonly refuse: UrlProblems['refuse'];
}

/** A parsed server URL (PostgreSQL, MySQL). */
export interface ParsedServerUrl<O extends OptionTable> extends ParsedUrl<O> {
  /** The servers, in the order written, each with its port (the dialect's default when none is written). */
  readonly hosts: readonly { readonly host: string; readonly port: number }[];
  /** Undefined lets the driver use its default (PGUSER, the system user …). */
  readonly user: string | undefined;
  /** Never logged; undefined lets the driver use its default (PGPASSWORD, ~/.pgpass …). */
  readonly password: string | undefined;
  /** Undefined for a plain connection. */
  readonly tls: SqlTls | undefined;
  /** Undefined when the URL sets none: the user of the URL picks its default. */
  readonly connectTimeoutMs: number | undefined;
}

/** One host of a server URL; `port` is undefined when the URL gives none (the dialect's default applies). */
export interface HostPort {
  readonly host: string;
  readonly port: number | undefined;
}

export interface ServerUrlParts {
  readonly user: string | undefined;
  readonly password: string | undefined;
  /** At least one entry; a single empty host when the URL names none. */
  readonly hosts: readonly HostPort[];
  /** The path without its leading `/`, decoded. */
  readonly path: string;
  readonly params: ReadonlyMap<string, string>;
}

const HOST = /^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])$/;

/** Splits `scheme://…`. @throws through `fail` naming the part that is wrong. */
export function splitServerUrl(url: string, fail: (what: string) => never): ServerUrlParts {
  const start = url.indexOf('://');
  if (start < 0) fail('not a server URL; expected scheme://[user[:password]@]host[:port]/database');
  const rest = url.slice(start + 3);
  // A server URL has no fragment: a "#" is a password's (or a path's) character that was not percent-encoded.
  if (rest.includes('#')) fail('"#" must be percent-encoded as %23 (in a password, say)');
  const [beforeQuery, query] = splitOnce(rest, '?');
  const [authority, path = ''] = splitOnce(beforeQuery, '/');
  // As in WHATWG URLs, the user information ends at the LAST "@" of the authority: an unencoded "@" in
  // a password stays in the password (and core/redact.ts hides it whole).
  const at = authority.lastIndexOf('@');
  // An "@" after the host, with a ":" before it, may end a password that an unencoded "/" or "?" cut short
  // (`u:pa/ss@db`): the URL reads either way, and a message naming its parts could show a piece of the
  // password. core/redact.ts hides all of it; refuse it naming nothing more.
  if (at < 0 && url.lastIndexOf('@') > start && url.slice(start + 3, url.lastIndexOf('@')).includes(':')) {
    fail('an "@" after the host: percent-encode "/" and "?" in a password (%2F, %3F) and "@" in an option value (%40)');
  }
  const userInfo = at < 0 ? undefined : authority.slice(0, at);
  const hostList = authority.slice(at + 1);
  const [user, password] = userInfo === undefined ? [undefined, undefined] : splitOnce(userInfo, ':');
  return {
    user: user ? decodePart(user, 'the user name', fail) : undefined,
    password: password ? decodePart(password, 'the password', fail) : undefined,
    hosts: hostList.split(',').map((entry) => hostPort(entry, fail)),
    path: decodePart(path, 'the database name', fail),
    params: readParams(query, fail),
  };
}

/** Splits `sqlite:PATH` or `sqlite://PATH`: the decoded path and the options. */
export function splitFileUrl(url: string, fail: (what: string) => never): { readonly path: string; readonly params: ReadonlyMap<string, string> } {
  // A "#" is a file name's character here: no password can be cut short by it.
  const [path, query] = splitOnce(url.slice(url.indexOf(':') + 1).replace(/^\/\//, ''), '?');
  return { path: decodePart(path, 'the file path', fail), params: readParams(query, fail) };
}

/** `decodeURIComponent`, reporting malformed percent-encoding through `fail`. */
function decodePart(text: string, what: string, fail: (what: string) => never): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return fail(`${what} is not valid percent-encoding`);
  }
}


function hostPort(entry: string, fail: (what: string) => never): HostPort {
  const colon = entry.lastIndexOf(':');
  const bracketed = entry.startsWith('[');
  const hasPort = colon >= 0 && (!bracketed || entry.lastIndexOf(']') < colon);
  const host = hasPort ? entry.slice(0, colon) : entry;
  const portText = hasPort ? entry.slice(colon + 1) : '';
  if (host !== '' && !HOST.test(host)) fail(`invalid host ${JSON.stringify(host)}: letters, digits, ".", "_", "-", or an IPv6 address in brackets`);
  const port = Number(portText);
  if (portText !== '' && (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65_535)) fail(`invalid port ${JSON.stringify(portText)}`);
  return { host: host.replace(/^\[(.*)\]$/, '$1'), port: portText === '' ? undefined : port };
}

function readParams(query: string | undefined, fail: (what: string) => never): ReadonlyMap<string, string> {
  const params = new Map<string, string>();
  for (const [name, value] of new URLSearchParams(query ?? '')) {
    if (params.has(name)) fail(`option "${name}" is given more than once`);
    params.set(name, value);
  }
  return params;
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}
