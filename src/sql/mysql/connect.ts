/**
 * From a parsed MySQL URL to what `mysql2` takes: host and port (or socket), credentials, database, TLS
 * (its files read now), connect timeout, and the settings every baton connection needs — big integers as
 * decimal text (tokens and counters pass 2^53) and utf8mb4. A store, a sync's pool and the relay's
 * connections are all configured here; each adds only its own settings.
 */
import type { ConnectionOptions } from 'mysql2/promise';
import { tlsSettings } from '../tls.js';
import type { MysqlUrl } from './url.js';

/**
 * @param defaultConnectTimeoutMs used when the URL sets no `connectTimeoutMs`.
 * @throws the URL's error (`url.refuse`) for a certificate file that cannot be read.
 */
export async function mysqlConnectionOptions(url: MysqlUrl, defaultConnectTimeoutMs: number): Promise<ConnectionOptions> {
  const [server] = url.hosts;
  const ssl = await tlsSettings(url.tls, url.refuse);
  return {
    ...(url.socket !== undefined ? { socketPath: url.socket } : { host: server?.host, port: server?.port }),
    ...(url.user !== undefined ? { user: url.user } : {}),
    ...(url.password !== undefined ? { password: url.password } : {}),
    database: url.database,
    connectTimeout: url.connectTimeoutMs ?? defaultConnectTimeoutMs,
    ...(ssl ? { ssl } : {}),
    supportBigNumbers: true,
    bigNumberStrings: true,
    charset: 'utf8mb4_general_ci',
  };
}
