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
  const withoutPassword = url.replace(/^([a-z][\w+.-]*:\/\/[^:/@]*):[^@/]+@/i, '$1:***@');
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
