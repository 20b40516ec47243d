/**
 * The registry of named statements: the only SQL a relay ever runs on behalf of a message. A message names
 * a statement and carries its arguments; the SQL text comes from the registry of the relay that applies it,
 * one text per dialect, with the arguments bound as parameters — never spliced into the text.
 *
 * Guarantees: a statement is found by name or {@link StatementError} is thrown; arguments are checked
 * against the declared parameters (every name present, no unknown name, each value of its declared type)
 * before anything reaches a database, and bound in declaration order (`$1, $2 …` on PostgreSQL, `?` in
 * order on MySQL/MariaDB and SQLite).
 * Non-guarantees: the SQL itself is the operator's; the registry does not parse it, so a statement whose
 * placeholders do not match its parameters fails at the database (and the change is parked).
 */
import { ConfigError } from '../core/errors.js';
import { describe } from '../core/duration.js';
import type { SqlKind } from '../sql/schemes.js';
import { StatementError } from './errors.js';

/** A SQL dialect: the relay's name for the SQL layer's kind. */
export type DialectKind = SqlKind;

/** A parameter type; a trailing `?` allows null. `json` values are bound as JSON text. */
export type ParamType = 'string' | 'integer' | 'number' | 'boolean' | 'json' | 'string?' | 'integer?' | 'number?' | 'boolean?' | 'json?';

/** One statement as configured: its parameters in binding order and its SQL, shared or per dialect. */
export interface StatementConfig {
  /** Parameter names and types, in binding order, e.g. `{ key: 'string', qty: 'integer' }`. Default none. */
  readonly params?: Readonly<Record<string, ParamType>>;
  /** SQL for every dialect that has no text of its own. */
  readonly sql?: string;
  readonly postgres?: string;
  readonly mysql?: string;
  readonly sqlite?: string;
}

/** A JSON value as arguments carry it. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type StatementArgs = Readonly<Record<string, JsonValue>>;

/** A value bound to a placeholder. */
export type BoundValue = string | number | boolean | null;

interface Param {
  readonly name: string;
  readonly type: 'string' | 'integer' | 'number' | 'boolean' | 'json';
  readonly nullable: boolean;
}

export interface Statement {
  readonly name: string;
  readonly params: readonly Param[];
  /** The SQL for `dialect`, or undefined when the statement has none for it. */
  sqlFor(dialect: DialectKind): string | undefined;
}

const STATEMENT_NAME = /^[A-Za-z][\w.-]{0,63}$/;
const PARAM_NAME = /^[A-Za-z_][\w]{0,63}$/;
const TYPES = new Set(['string', 'integer', 'number', 'boolean', 'json']);
const STATEMENT_FIELDS = new Set(['params', 'sql', 'postgres', 'mysql', 'sqlite']);
const DIALECTS: readonly DialectKind[] = ['postgres', 'mysql', 'sqlite'];

export class StatementRegistry {
  readonly #statements: ReadonlyMap<string, Statement>;

  private constructor(statements: ReadonlyMap<string, Statement>) {
    this.#statements = statements;
  }

  /**
   * Validates `config` (a map of name → {@link StatementConfig}).
   * @param path names the config in error messages, e.g. `topology.statements`.
   * @throws ConfigError naming the field path.
   */
  static define(config: unknown, path = 'statements'): StatementRegistry {
    if (typeof config !== 'object' || config === null || Array.isArray(config)) {
      throw new ConfigError(`${path}: must be an object of named statements, got ${describe(config)}`);
    }
    const statements = new Map<string, Statement>();
    for (const [name, raw] of Object.entries(config)) {
      const at = `${path}.${name}`;
      if (!STATEMENT_NAME.test(name)) throw new ConfigError(`${at}: a statement name is a letter then up to 63 letters, digits, '_', '.' or '-'`);
      statements.set(name, defineStatement(name, raw, at));
    }
    if (statements.size === 0) throw new ConfigError(`${path}: at least one statement is needed`);
    return new StatementRegistry(statements);
  }

  get names(): readonly string[] {
    return [...this.#statements.keys()];
  }

  has(name: string): boolean {
    return this.#statements.has(name);
  }

  /** @throws StatementError when no statement has this name. */
  get(name: string): Statement {
    const statement = this.#statements.get(name);
    if (!statement) throw new StatementError(`statement ${JSON.stringify(name)} is not in the registry (known: ${this.names.join(', ')})`);
    return statement;
  }

  /**
   * Checks `args` against the statement's parameters and returns the SQL for `dialect` with its values in
   * binding order. @throws StatementError (unknown statement, no SQL for the dialect, bad arguments).
   */
  bind(name: string, args: unknown, dialect: DialectKind): { sql: string; values: BoundValue[] } {
    const statement = this.get(name);
    const sql = statement.sqlFor(dialect);
    if (sql === undefined) throw new StatementError(`statement ${JSON.stringify(name)}: no SQL for ${dialect}`);
    return { sql, values: checkArgs(statement, args) };
  }

  /** Checks `args` without binding them. @throws StatementError. */
  check(name: string, args: unknown): void {
    checkArgs(this.get(name), args);
  }
}

function defineStatement(name: string, raw: unknown, at: string): Statement {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${at}: must be an object { params?, sql?, postgres?, mysql?, sqlite? }, got ${describe(raw)}`);
  const unknown = Object.keys(raw).filter((k) => !STATEMENT_FIELDS.has(k));
  if (unknown.length > 0) throw new ConfigError(`${at}: unknown field ${unknown.map((k) => JSON.stringify(k)).join(', ')} (known: ${[...STATEMENT_FIELDS].join(', ')})`);
  const config = raw as Record<string, unknown>;
  const texts = new Map<DialectKind, string>();
  for (const dialect of DIALECTS) {
    const text = config[dialect] ?? config.sql;
    if (text === undefined) continue;
    const field = config[dialect] !== undefined ? `${at}.${dialect}` : `${at}.sql`;
    if (typeof text !== 'string' || text.trim() === '') throw new ConfigError(`${field}: must be a non-empty SQL string, got ${describe(text)}`);
    texts.set(dialect, text);
  }
  if (texts.size === 0) throw new ConfigError(`${at}: needs "sql" or SQL for at least one of ${DIALECTS.join(', ')}`);
  const params: Param[] = [];
  const rawParams = config.params ?? {};
  if (typeof rawParams !== 'object' || rawParams === null || Array.isArray(rawParams)) {
    throw new ConfigError(`${at}.params: must be an object of name → type (string, integer, number, boolean, json; "?" for nullable), got ${describe(rawParams)}`);
  }
  for (const [param, type] of Object.entries(rawParams)) {
    if (!PARAM_NAME.test(param)) throw new ConfigError(`${at}.params.${param}: a parameter name is a letter or '_' then letters, digits or '_'`);
    const nullable = typeof type === 'string' && type.endsWith('?');
    const base = typeof type === 'string' ? type.replace(/\?$/, '') : '';
    if (!TYPES.has(base)) throw new ConfigError(`${at}.params.${param}: type must be one of string, integer, number, boolean, json (with "?" for nullable), got ${describe(type)}`);
    params.push({ name: param, type: base as Param['type'], nullable });
  }
  return { name, params, sqlFor: (dialect) => texts.get(dialect) };
}

function checkArgs(statement: Statement, args: unknown): BoundValue[] {
  const at = `statement ${JSON.stringify(statement.name)}`;
  if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new StatementError(`${at}: args must be an object of named values, got ${describe(args)}`);
  const record = args as Record<string, unknown>;
  const known = new Set(statement.params.map((p) => p.name));
  const extra = Object.keys(record).filter((k) => !known.has(k));
  if (extra.length > 0) throw new StatementError(`${at}: unknown argument ${extra.map((k) => JSON.stringify(k)).join(', ')} (parameters: ${[...known].join(', ') || 'none'})`);
  return statement.params.map((param) => {
    const value = record[param.name];
    if (value === undefined || value === null) {
      if (param.nullable) return null;
      throw new StatementError(`${at}: argument "${param.name}" is required (${param.type})`);
    }
    const bad = () => new StatementError(`${at}: argument "${param.name}" must be ${param.type}, got ${describe(value)}`);
    switch (param.type) {
      case 'string':
        if (typeof value !== 'string') throw bad();
        return value;
      case 'integer':
        if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw bad();
        return value;
      case 'number':
        if (typeof value !== 'number' || !Number.isFinite(value)) throw bad();
        return value;
      case 'boolean':
        if (typeof value !== 'boolean') throw bad();
        return value;
      case 'json':
        return JSON.stringify(value);
    }
  });
}
