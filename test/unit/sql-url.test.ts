/**
 * The SQL layer's one URL parser (src/sql/url.ts): every dialect's URL form, TLS options, unknown and
 * repeated options refused by name, percent-encoding, the reader's own error class and options, and
 * passwords that never reach a message — plus the one redactor those messages go through.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, StoreUrlError } from '../../src/core/errors.js';
import { redactUrl } from '../../src/core/redact.js';
import { POSTGRES_CONNECTION_OPTIONS } from '../../src/sql/postgres/url.js';
import { MYSQL_CONNECTION_OPTIONS } from '../../src/sql/mysql/url.js';
import { tlsSettings } from '../../src/sql/tls.js';
import { parseSqlUrl } from '../../src/sql/url.js';

const relay = { label: 'relay database', error: ConfigError } as const;
const postgres = { ...relay, kinds: ['postgres'] as const };
const mysql = { ...relay, kinds: ['mysql'] as const };

/** The error `parse` throws (failing the test when it throws none). */
function refusal(parse: () => unknown): Error {
  try {
    parse();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the URL to be refused');
}

describe('PostgreSQL URLs', () => {
  it('reads host, port, user, password, database and the connection options', () => {
    const url = parseSqlUrl('postgresql://alice:p%40ss%2Fw@db.example:6543/my%20db?applicationName=orders&connectTimeoutMs=2500', relay);
    expect(url).toMatchObject({
      kind: 'postgres',
      hosts: [{ host: 'db.example', port: 6543 }],
      user: 'alice',
      password: 'p@ss/w',
      database: 'my db',
      tls: undefined,
      connectTimeoutMs: 2500,
      applicationName: 'orders',
      shown: 'postgresql://alice:***@db.example:6543/my%20db?applicationName=orders&connectTimeoutMs=2500',
    });
    expect(parseSqlUrl('postgres://db', relay)).toMatchObject({ hosts: [{ host: 'db', port: 5432 }], user: undefined, database: undefined, connectTimeoutMs: undefined, applicationName: 'baton' });
    expect(parseSqlUrl('postgres://u@[::1]:5433/x', relay)).toMatchObject({ hosts: [{ host: '::1', port: 5433 }] });
  });

  it.each([
    ['disable', '', undefined],
    ['require', '', { verify: 'none' }],
    ['require', '&sslrootcert=/ca.pem', { verify: 'chain', ca: { option: 'sslrootcert', path: '/ca.pem' } }],
    ['verify-ca', '&sslrootcert=/ca.pem', { verify: 'chain', ca: { option: 'sslrootcert', path: '/ca.pem' } }],
    ['verify-full', '', { verify: 'full' }],
    ['verify-full', '&sslcert=/c.pem&sslkey=/k.pem', { verify: 'full', cert: { option: 'sslcert', path: '/c.pem' }, key: { option: 'sslkey', path: '/k.pem' } }],
  ])('sslmode=%s%s is libpq’s meaning', (mode, files, tls) => {
    expect(parseSqlUrl(`postgres://db/x?sslmode=${mode}${files}`, postgres).tls).toEqual(tls);
  });

  it.each([
    ['postgres://u:pw@db/x?sslmode=prefer', /sslmode must be one of disable, require, verify-ca, verify-full, got "prefer" \(no silent plain-text fallback/],
    ['postgres://u:pw@db/x?sslmode=verify-ca', /sslmode=verify-ca needs sslrootcert/],
    ['postgres://u:pw@db/x?sslrootcert=/ca.pem', /sslrootcert needs sslmode=require, verify-ca or verify-full/],
    ['postgres://u:pw@db/x?sslmode=require&sslcert=/c.pem', /sslcert and sslkey must be given together/],
    ['postgres://u:pw@db/x?ssl=true', /unknown option "ssl" \(known: sslmode, sslrootcert, sslcert, sslkey, connectTimeoutMs, applicationName\)/],
    ['postgres://u:pw@db/x?connectTimeoutMs=1', /connectTimeoutMs must be an integer from 100 to 600000, got "1"/],
    ['postgres://u:pw@db/x?sslmode=require&sslmode=disable', /option "sslmode" is given more than once/],
    ['postgres://u:pw@h1,h2:5433/x', /several hosts are not supported/],
    ['postgres://u:pw@/x', /missing host/],
    ['postgres://u:pw@db:99999/x', /invalid port "99999"/],
    ['postgres://u:pw@db/x/y', /database name may not contain "\/"/],
    ['postgres://u:pw@db/%zz', /the database name is not valid percent-encoding/],
    ['postgres://u:p#w@db/x', /"#" must be percent-encoded as %23/],
    ['postgres://u:pw@d b/x', /invalid host "d b"/],
  ])('refuses %s', (url, message) => {
    const error = refusal(() => parseSqlUrl(url, relay));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(message);
    expect(error.message).toMatch(/^relay database "postgres:\/\/u:\*\*\*@/);
  });
});

describe('MySQL / MariaDB URLs', () => {
  it('reads the server, a socket, the database and TLS', () => {
    expect(parseSqlUrl('mariadb://app:s%40cret@db.example:3307/shop?connectTimeoutMs=2000', relay)).toMatchObject({
      kind: 'mysql',
      hosts: [{ host: 'db.example', port: 3307 }],
      socket: undefined,
      user: 'app',
      password: 's@cret',
      database: 'shop',
      tls: undefined,
      connectTimeoutMs: 2000,
    });
    expect(parseSqlUrl('mysql://app@/shop?socket=/run/mysqld/mysqld.sock', relay)).toMatchObject({ hosts: [], socket: '/run/mysqld/mysqld.sock' });
    expect(parseSqlUrl('mysql://db/shop?ssl=true', mysql).tls).toEqual({ verify: 'full' });
    expect(parseSqlUrl('mysql://db/shop?ssl=1&sslRejectUnauthorized=false', mysql).tls).toEqual({ verify: 'none' });
    // A CA asks for TLS by itself.
    expect(parseSqlUrl('mysql://db/shop?sslCa=/ca.pem', mysql).tls).toEqual({ verify: 'full', ca: { option: 'sslCa', path: '/ca.pem' } });
  });

  it.each([
    ['mysql://u:pw@db/', /missing or invalid database name/],
    ['mysql://u:pw@/shop', /missing host/],
    ['mysql://u:pw@db/shop?sslmode=require', /unknown option "sslmode" \(known: ssl, sslCa, sslCert, sslKey, sslRejectUnauthorized, socket, connectTimeoutMs\)/],
    ['mysql://u:pw@db/shop?ssl=false&sslCa=/ca.pem', /sslCa\/sslCert\/sslKey given with ssl=false/],
    ['mysql://u:pw@db/shop?sslCert=/c.pem', /sslCert and sslKey go together/],
    ['mysql://u:pw@db/shop?ssl=maybe', /ssl must be true or false \(or 1 or 0\), got "maybe"/],
    ['mysql://u:pw@db/shop?connectTimeoutMs=200000', /connectTimeoutMs must be an integer from 100 to 120000/],
    ['mysql://u:pw@a,b/shop', /several hosts are not supported/],
  ])('refuses %s', (url, message) => {
    const error = refusal(() => parseSqlUrl(url, relay));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(message);
    expect(error.message).toContain('u:***@');
    expect(error.message).not.toContain('pw');
  });
});

describe('SQLite URLs', () => {
  it('reads the file, decoded, with or without //', () => {
    expect(parseSqlUrl('sqlite:./data/a%20b.db', relay)).toMatchObject({ kind: 'sqlite', file: './data/a b.db' });
    expect(parseSqlUrl('sqlite:///var/lib/x.db', relay)).toMatchObject({ file: '/var/lib/x.db' });
    expect(parseSqlUrl('sqlite:./a#1.db', relay)).toMatchObject({ file: './a#1.db' });
  });

  it.each([
    ['sqlite:', /missing file path/],
    ['sqlite::memory:', /an in-memory SQLite database cannot be shared by processes/],
    ['sqlite:./x.db?timeout=5', /unknown option "timeout" \(known: none\)/],
    ['sqlite:./x%zz.db', /the file path is not valid percent-encoding/],
  ])('refuses %s', (url, message) => {
    expect(() => parseSqlUrl(url, relay)).toThrow(message);
  });
});

describe('the reader of a URL', () => {
  const store = { label: 'postgres store', error: StoreUrlError, kinds: ['postgres'] as const };

  it('refuses with its own error class and label', () => {
    const error = refusal(() => parseSqlUrl('postgres://u:pw@db/x?bogus=1', store));
    expect(error).toBeInstanceOf(StoreUrlError);
    expect(error.message).toBe('postgres store "postgres://u:***@db/x?bogus=1": unknown option "bogus" (known: sslmode, sslrootcert, sslcert, sslkey, connectTimeoutMs, applicationName)');
  });

  it('takes only its dialects, naming the schemes it takes', () => {
    expect(refusal(() => parseSqlUrl('mysql://u:pw@db/x', store)).message).toBe('postgres store "mysql://u:***@db/x": scheme must be "postgres:" or "postgresql:", got "mysql:"');
    expect(refusal(() => parseSqlUrl('oracle://u:pw@db/x', { label: 'target.db', error: ConfigError })).message).toBe(
      'target.db must be a postgres://, postgresql://, mysql://, mariadb:// or sqlite: URL, got "oracle://u:***@db/x"',
    );
    expect(refusal(() => parseSqlUrl(42, { label: 'target.db', error: ConfigError })).message).toMatch(/URL, got number 42$/);
  });

  it('adds its own options to the dialect’s, with their defaults, and lists them all when one is unknown', () => {
    const options = { pollMs: { type: 'integer', min: 5, max: 10_000, default: 50 }, crashDetection: { type: 'boolean', default: true } } as const;
    const reader = { label: 'mysql store', error: StoreUrlError, kinds: ['mysql'] as const, options };
    expect(parseSqlUrl('mysql://db/x?pollMs=20&crashDetection=0', reader).options).toEqual({ pollMs: 20, crashDetection: false });
    expect(parseSqlUrl('mysql://db/x', reader).options).toEqual({ pollMs: 50, crashDetection: true });
    expect(refusal(() => parseSqlUrl('mysql://db/x?polMs=20', reader)).message).toContain(
      `unknown option "polMs" (known: ${[...Object.keys(MYSQL_CONNECTION_OPTIONS), 'pollMs', 'crashDetection'].join(', ')})`,
    );
    // The relay takes no option of a store's.
    expect(() => parseSqlUrl('mysql://db/x?pollMs=20', relay)).toThrow(/unknown option "pollMs"/);
    expect(Object.keys(POSTGRES_CONNECTION_OPTIONS)).not.toContain('pollMs');
  });
});

describe('passwords in messages', () => {
  it.each([
    'postgres://u:SE@CRET@db/x?bogus=1', // an unencoded "@": the password ends at the last one, as in WHATWG URLs
    'postgres://u:SE/CRET@db/x', // an unencoded "/": the URL reads oddly and is refused
    'postgres://u:SE?CRET@db/x',
    'postgres://u:SE#CRET@db/x',
    'mysql://u:SE:CRET@db:1x/x',
  ])('never shows the password of %s', (url) => {
    const error = refusal(() => parseSqlUrl(url, relay));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).not.toMatch(/SE|CRET/);
    expect(error.message).toContain('u:***@');
  });

  it('redacts passwords and secret-named options, and nothing else', () => {
    expect(redactUrl('postgres://app:s3cret@db/x')).toBe('postgres://app:***@db/x');
    expect(redactUrl('postgres://app:p@ss/w@db:5432/x')).toBe('postgres://app:***@db:5432/x');
    expect(redactUrl('postgres://app@db:5432/x?password=s3cret&schema=a')).toBe('postgres://app@db:5432/x?password=***&schema=a');
    expect(redactUrl('amqp://guest:guest@127.0.0.1:5672')).toBe('amqp://guest:***@127.0.0.1:5672');
    expect(redactUrl('sqlite:./x.db')).toBe('sqlite:./x.db');
    expect(redactUrl('postgres://db:5432/x')).toBe('postgres://db:5432/x');
  });
});

describe('TLS files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-tls-'));
  writeFileSync(join(dir, 'ca.pem'), 'CA');
  writeFileSync(join(dir, 'c.pem'), 'CERT');
  writeFileSync(join(dir, 'k.pem'), 'KEY');

  it('are read when the connection is configured, into what tls.connect takes', async () => {
    const full = parseSqlUrl(`postgres://db/x?sslmode=verify-full&sslrootcert=${dir}/ca.pem&sslcert=${dir}/c.pem&sslkey=${dir}/k.pem`, postgres);
    expect(await tlsSettings(full.tls, full.refuse)).toEqual({ rejectUnauthorized: true, ca: 'CA', cert: 'CERT', key: 'KEY' });
    const chain = parseSqlUrl(`postgres://db/x?sslmode=verify-ca&sslrootcert=${dir}/ca.pem`, postgres);
    const settings = await tlsSettings(chain.tls, chain.refuse);
    expect(settings).toMatchObject({ rejectUnauthorized: true, ca: 'CA' });
    expect(settings?.checkServerIdentity?.()).toBeUndefined(); // the host name is not checked
    const none = parseSqlUrl('mysql://db/x?ssl=true&sslRejectUnauthorized=false', mysql);
    expect(await tlsSettings(none.tls, none.refuse)).toEqual({ rejectUnauthorized: false });
    expect(await tlsSettings(undefined, none.refuse)).toBeUndefined();
  });

  it('that cannot be read are refused naming the option and the path', async () => {
    const url = parseSqlUrl('mysql://u:pw@db/x?sslCa=/nonexistent/ca.pem', { label: 'mysql store', error: StoreUrlError, kinds: ['mysql'] });
    const error = await tlsSettings(url.tls, url.refuse).catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(StoreUrlError);
    expect((error as Error).message).toMatch(/^mysql store "mysql:\/\/u:\*\*\*@db\/x\?sslCa=\/nonexistent\/ca.pem": sslCa: cannot read "\/nonexistent\/ca.pem"/);
  });
});
