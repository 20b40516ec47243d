/**
 * baton: make a fleet of identical processes behave like one where it matters.
 * See README.md and docs/concepts.md.
 */
export { createCluster, Cluster, type ClusterOptions, type ClusterState } from './cluster.js';
export type { TaskContext, TaskHandler, TaskOptions, Checkpoint, RunRecord } from './scheduler/task.js';
export type { BatonEvents, SchedulerEvents, RunOutcome, MissReason } from './scheduler/events.js';
export type { SessionEvents } from './cluster/session-keeper.js';
export type { SessionTimingOptions } from './cluster/session-timing.js';
export type { StatusSnapshot, NodeStatus, TaskStatus } from './monitor/status.js';
export { readStatus } from './monitor/status.js';
export type { NodeInfo, TaskDeclaration } from './core/node-info.js';
export type { Clock } from './core/clock.js';
export type { Duration } from './core/duration.js';
export type { Logger } from './core/logger.js';
export {
  BatonError,
  ClosedError,
  ConfigError,
  DurationError,
  NotOwnerError,
  ScheduleError,
  SessionExpiredError,
  StoreUnavailableError,
  StoreUrlError,
  TaskDuplicateError,
  TimeoutError,
  type BatonErrorCode,
} from './core/errors.js';
export { openStore } from './stores/open-store.js';
export type { Store } from './stores/contract.js';
