/**
 * `baton-fleet/sync`: incremental HTTP → database sync as a resumable, fenced singleton task.
 * See docs/http-sync.md.
 */
export { httpSync, type HttpSync, type HttpSyncStats, type HttpSyncCheckpoint, type SyncRunContext } from './http-sync.js';
export type {
  HttpSyncOptions,
  HttpSourceOptions,
  HttpTargetOptions,
  TargetDatabase,
  PostgresPoolHandle,
  MysqlPoolHandle,
  SqliteDatabaseHandle,
  SyncRequestInput,
  ParsedPage,
  SyncPageEvent,
  SyncRunSummary,
  SyncStopReason,
} from './options.js';
export { defaultParse } from './options.js';
export type { CursorOptions, UpdatedSinceCursorOptions, IncreasingIdCursorOptions, PageTokenCursorOptions, CursorValue } from './cursor.js';
export type { RecordSchema, StandardSchemaLike, SafeParseSchemaLike } from './schema.js';
export { parseRetryAfter } from './http-client.js';
export { SyncSourceError, SyncTargetError } from './errors.js';
export { NotOwnerError, ConfigError } from '../core/errors.js';
