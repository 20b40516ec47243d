import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { StatementError } from '../../src/relay/errors.js';
import { StatementRegistry } from '../../src/relay/statements.js';

const registry = StatementRegistry.define({
  put: {
    params: { k: 'string', n: 'integer', note: 'string?', doc: 'json?', ok: 'boolean' },
    postgres: 'INSERT INTO t (k, n, note, doc, ok) VALUES ($1, $2, $3, $4, $5)',
    mysql: 'INSERT INTO t (k, n, note, doc, ok) VALUES (?, ?, ?, ?, ?)',
  },
  clear: { sql: 'DELETE FROM t' },
});

describe('relay statement registry', () => {
  it('binds named arguments in declaration order, per dialect', () => {
    expect(registry.bind('put', { ok: true, n: 3, k: 'a', doc: { x: [1] } }, 'postgres')).toEqual({
      sql: 'INSERT INTO t (k, n, note, doc, ok) VALUES ($1, $2, $3, $4, $5)',
      values: ['a', 3, null, '{"x":[1]}', true],
    });
    expect(registry.bind('put', { k: 'a', n: 1, ok: false }, 'mysql').sql).toMatch(/VALUES \(\?, \?/);
    expect(registry.bind('clear', {}, 'sqlite')).toEqual({ sql: 'DELETE FROM t', values: [] });
  });

  it('refuses unknown statements, missing SQL and bad arguments with a StatementError', () => {
    const fails = (fn: () => unknown, pattern: RegExp) => {
      expect(fn).toThrow(StatementError);
      expect(fn).toThrow(pattern);
    };
    fails(() => registry.bind('drop', {}, 'postgres'), /statement "drop" is not in the registry/);
    fails(() => registry.bind('put', { k: 'a', n: 1, ok: true }, 'sqlite'), /no SQL for sqlite/);
    fails(() => registry.bind('put', { k: 'a', ok: true }, 'postgres'), /argument "n" is required/);
    fails(() => registry.bind('put', { k: 'a', n: 1.5, ok: true }, 'postgres'), /argument "n" must be integer/);
    fails(() => registry.bind('put', { k: 1, n: 1, ok: true }, 'postgres'), /argument "k" must be string/);
    fails(() => registry.bind('put', { k: 'a', n: 1, ok: true, sql: 'DROP TABLE t' }, 'postgres'), /unknown argument "sql"/);
    fails(() => registry.bind('put', ['a', 1], 'postgres'), /args must be an object/);
  });

  it('validates its configuration with field paths', () => {
    expect(() => StatementRegistry.define({ 'bad name': { sql: 'x' } }, 's')).toThrow(/^s\.bad name:/);
    expect(() => StatementRegistry.define({ p: {} }, 's')).toThrow(/^s\.p: needs "sql"/);
    expect(() => StatementRegistry.define({ p: { sql: 'x', params: { a: 'date' } } }, 's')).toThrow(/^s\.p\.params\.a: type must be/);
    expect(() => StatementRegistry.define({ p: { sql: 'x', text: 'y' } }, 's')).toThrow(/unknown field "text"/);
    expect(() => StatementRegistry.define({ p: { postgres: '' } }, 's')).toThrow(ConfigError);
  });
});
