/**
 * From a parsed PostgreSQL URL to what `pg` takes: host, port, credentials, database, TLS (its files read
 * now), connect timeout and application name. Every PostgreSQL connection baton makes — a store's, a
 * sync's pool, the relay's pool and its publisher lock — is configured here; each adds only its own
 * settings (statement timeout, keepalive, pipeline mode).
 */
import type { ClientConfig } from 'pg';
import { tlsSettings } from '../tls.js';
import type { PostgresUrl } from './url.js';

/**
 * @param defaultConnectTimeoutMs used when the URL sets no `connectTimeoutMs`.
 * @throws the URL's error (`url.refuse`) for a certificate file that cannot be read.
 */
export async function pgClientConfig(url: PostgresUrl, defaultConnectTimeoutMs: number): Promise<ClientConfig> {
  // One host until multi-host URLs are connected to in turn; the parser refuses a list today.
  const [server] = url.hosts;
  const ssl = await tlsSettings(url.tls, url.refuse);
  return {
    host: server?.host,
    port: server?.port,
    ...(url.user !== undefined ? { user: url.user } : {}),
    ...(url.password !== undefined ? { password: url.password } : {}),
    ...(url.database !== undefined ? { database: url.database } : {}),
    ssl: ssl ?? false,
    connectionTimeoutMillis: url.connectTimeoutMs ?? defaultConnectTimeoutMs,
    application_name: url.applicationName,
  };
}
