/**
 * Regression (found by test/fuzz/parsers.test.ts): malformed percent-encoding in a store URL threw a bare
 * URIError from decodeURIComponent instead of a StoreUrlError naming the URL.
 */
import { describe, expect, it } from 'vitest';
import { StoreUrlError } from '../../src/core/errors.js';
import { parseStoreUrl } from '../../src/stores/open-store.js';
import { parsePostgresUrl } from '../../src/stores/postgres/url.js';
import { parseMysqlUrl } from '../../src/stores/mysql/mysql-url.js';
import { parseRedisUrl } from '../../src/stores/redis/url.js';
import { parseEtcdUrl } from '../../src/stores/etcd/url.js';

describe('store URLs with malformed percent-encoding', () => {
  it.each([
    ['sqlite file path', () => parseStoreUrl('sqlite://127.0.0.1/%')],
    ['sqlite file path with pollMs', () => parseStoreUrl('sqlite:./a%zz.db?pollMs=50')],
    ['postgres user', () => parsePostgresUrl('postgres://%:@db/x')],
    ['postgres password', () => parsePostgresUrl('postgres://u:%E0%A4%A@db/x')],
    ['postgres database', () => parsePostgresUrl('postgres://u@db/%zz')],
    ['mysql user', () => parseMysqlUrl('mysql://%@db/x')],
    ['mysql database', () => parseMysqlUrl('mysql://u@db/%E0%A4%A')],
    ['redis user', () => parseRedisUrl('redis://%zz@a.aa:1')],
    ['redis password', () => parseRedisUrl('redis://u:%E0%A4%A@a.aa:1')],
    ['etcd user', () => parseEtcdUrl('etcd://%zz:pw@a.aa:1')],
  ])('%s: StoreUrlError', (_what, parse) => {
    expect(parse).toThrow(StoreUrlError);
  });

  it('still decodes valid percent-encoding', () => {
    expect(parseStoreUrl('sqlite:./a%20b.db')).toEqual({ kind: 'sqlite', file: './a b.db' });
    expect(parsePostgresUrl('postgres://u%40x:p%2Fw@db/x').user).toBe('u@x');
  });
});
