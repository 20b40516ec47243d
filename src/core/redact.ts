/**
 * Credentials out of URLs before they reach a message or a log: one redactor for store, database and
 * broker URLs alike (`postgres://app:s3cret@db/x` → `postgres://app:***@db/x`).
 */

/** Query parameters that carry a secret (compared case-insensitively). */
const SECRET_PARAMS = /^(password|passwd|pass|pwd|secret|token|sslpassword|auth)$/i;

/**
 * The URL with its password (and any secret-named query parameter) replaced by `***`. A URL without a
 * password — none, or an empty one — is shown as given (`postgres://app@db/x`, `postgres://app:@db/x`):
 * `***` always means a secret was there.
 */
export function redactUrl(url: string): string {
  const withoutPassword = hidePassword(url);
  const query = withoutPassword.indexOf('?');
  if (query < 0) return withoutPassword;
  const params = withoutPassword
    .slice(query + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq > 0 && SECRET_PARAMS.test(pair.slice(0, eq)) ? `${pair.slice(0, eq)}=***` : pair;
    });
  return `${withoutPassword.slice(0, query)}?${params.join('&')}`;
}

/**
 * Hides everything from the first ":" after `scheme://` to the LAST "@" of the URL. URL parsers end a
 * password at the last "@" of the authority, and a "/", "?" or "#" typed into a password unencoded makes
 * them read it in odd ways (then fail, naming the URL): hiding up to the last "@" covers all of them. The
 * price, on the safe side: a URL without a password but with a port and an "@" further on (in a query
 * value) is hidden from the port to that "@".
 */
function hidePassword(url: string): string {
  const start = /^[a-z][\w+.-]*:\/\//i.exec(url)?.[0].length;
  if (start === undefined) return url;
  const at = url.lastIndexOf('@');
  const colon = url.indexOf(':', start);
  // No password, or an empty one (`app:@db`): nothing secret to hide.
  if (at < start || colon < 0 || colon > at || colon + 1 === at) return url;
  return `${url.slice(0, colon + 1)}***${url.slice(at)}`;
}
