/**
 * baton: make a fleet of identical processes behave like one where it matters.
 * See README.md and docs/concepts.md.
 */
export { createCluster, Cluster, type ClusterOptions, type ClusterState } from './node/node.js';
export type {
  TaskContext,
  TaskHandler,
  TaskOptions,
  Checkpoint,
  RunRecord,
  DispatchHandlers,
  ProducerContext,
  ItemContext,
  AcquireContext,
  AcquireHook,
} from './scheduler/task.js';
export type { TaskMode, ModeOptions, NodeSelector, QueueOptions, ShardInfo } from './scheduler/modes.js';
export type { QueuedItem, DeadLetter } from './scheduler/queue.js';
export type { BatonEvents, SchedulerEvents, RunOutcome, MissReason } from './scheduler/events.js';
export type { RunOptions, MisfirePolicy, OverlapPolicy } from './scheduler/task-options.js';
export type { SessionEvents } from './cluster/session-keeper.js';
export type { SessionTimingOptions } from './cluster/session-timing.js';
export { LockHandle, type LockOptions } from './cluster/lock.js';
export { Semaphore, Permit, type SemaphoreOptions, type PermitOptions, type SemaphoreHolder } from './cluster/semaphore.js';
export { SharedState, MAX_STATE_BYTES, type Versioned, type WriteOptions, type WatchOptions } from './cluster/shared-state.js';
export type { ElectionEvent, ElectionRole, ElectionsOptions, OwnerInfo } from './scheduler/elections.js';
export type { StatusSnapshot, NodeStatus, TaskStatus, LockStatus } from './monitor/status.js';
export type { Monitor, MonitorOptions } from './monitor/monitor.js';
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
  LockHeldError,
  NotOwnerError,
  ScheduleError,
  SessionExpiredError,
  StoreUnavailableError,
  StoreUrlError,
  TaskDuplicateError,
  TimeoutError,
  ValueError,
  type BatonErrorCode,
  type HolderInfo,
} from './core/errors.js';
export { DriverMissingError } from './core/driver.js';
export { openStore } from './stores/open-store.js';
export type { Store, Guard } from './stores/contract.js';
