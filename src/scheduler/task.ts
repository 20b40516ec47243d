import type { NodeInfo } from '../core/node-info.js';
import { mapInBatches } from '../core/batches.js';
import { ConfigError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { assertTaskName, DECLARATION_PREFIX, declarationKey, declarationVersionKey } from './keys.js';
import type { Store } from '../stores/contract.js';
import { parseSchedule, type Schedule, type ScheduleOptions } from './schedule.js';
import type { MissReason, RunOutcome } from './events.js';
import { parseRunPolicy, RUN_OPTION_NAMES, type RunOptions, type RunPolicy } from './task-options.js';
import { MODE_OPTION_NAMES, parseMode, type ModeOptions, type ResolvedMode, type ShardInfo } from './modes.js';
import type { Duration } from '../core/duration.js';
import type { TaskName, UnitName } from './names.js';
import { createHash } from 'node:crypto';

/** Options of a task. Exactly one of `every`, `cron` and `at`; see docs/scheduling.md for each option. */
export interface TaskOptions extends ScheduleOptions, RunOptions, ModeOptions {
  /**
   * Run records kept per task in the store. Default 100. Pruned every ⌊history/4⌋ runs, so up to
   * history + ⌊history/4⌋ − 1 may exist between two prunes.
   */
  readonly history?: number;
  /**
   * Called by each new owner of the task (of each unit, for modes that split it) before its first run
   * under that ownership, with the new fencing token: write the token into your own resource here (a
   * row's `fencing_token`, the token an HTTP API remembers) so that it refuses a woken ex-owner's late
   * writes at once, not only after this owner's first write. Nothing runs under the ownership until it
   * resolves; when it throws, the node runs nothing, reports an `error` event and calls it again about a
   * second later (or another node takes over). It should honour `ctx.signal`: the task waits for it.
   * Not part of the declaration compared between nodes. See docs/concepts.md.
   */
  readonly onAcquire?: AcquireHook;
}

/** What a task's `onAcquire` hook receives: a new ownership, before anything runs under it. */
export interface AcquireContext {
  readonly task: string;
  /** The unit acquired: the task's name, `task#i` for a shard, `task@node` for a broadcast share. */
  readonly unit: string;
  /** For a `sharded` task: the shard acquired. */
  readonly shard?: ShardInfo;
  /** The new fencing token, greater than every earlier owner's: write it into your resource. */
  readonly token: bigint;
  readonly node: NodeInfo;
  /**
   * Aborts when this ownership ends or the node shuts down; `aborted`, `reason` and `throwIfAborted()`
   * check the local deadline when asked, as a run's `ctx.signal` does.
   */
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** Throws NotOwnerError (and aborts `signal`) unless the ownership is provably held right now. */
  assertOwner(): void;
}

/** A task's `onAcquire` hook (see {@link TaskOptions.onAcquire}). */
export type AcquireHook = (ctx: AcquireContext) => Promise<void> | void;

/** A task's committed progress (seed name: `lastCommit`), written only with the owner's fencing token. */
export interface Checkpoint<T = unknown> {
  /**
   * The last committed value, or undefined when none was ever committed. Refused with NotOwnerError (and
   * the run's signal aborts) once this run's ownership is no longer provably held, like a commit.
   */
  get(): Promise<T | undefined>;
  /**
   * Commits `value`, guarded by this run's fencing token: refused with NotOwnerError (and the run's
   * signal aborts) when another node owns the task now, so a paused ex-owner can never overwrite it.
   */
  commit(value: T): Promise<void>;
}

/** What a handler receives for one run. */
export interface TaskContext<T = unknown> {
  readonly task: string;
  /**
   * The unit this run belongs to: the task's name, `task#i` for a shard of a `sharded` task, `task@node`
   * for a node's share of a `broadcast` task. Run records, checkpoint and token are the unit's own.
   */
  readonly unit: string;
  /** For a `sharded` task: which shard this run handles. */
  readonly shard?: ShardInfo;
  /** The tick this run executes: its scheduled time. */
  readonly tick: Date;
  /** How late the run started after its scheduled time plus its jitter, in ms. */
  readonly lateMs: number;
  /** The delay `jitter` added to this tick's start (0 without jitter): start = tick + jitterMs + lateMs. */
  readonly jitterMs: number;
  /** 1 for the first attempt, 2 for the first retry, … (see `retries`). */
  readonly attempt: number;
  /** True for a run requested with `cluster.trigger()` (then `tick` is the time of the request). */
  readonly trigger: boolean;
  /** Fencing token of the ownership under which this run happens; put it into your own writes. */
  readonly token: bigint;
  readonly node: NodeInfo;
  /**
   * Aborts when ownership is lost (session expired, a fenced write refused), the node shuts down, or the
   * attempt exceeds `timeout` (reason: a TimeoutError). Honour it: stop work and return. (Hand-over to
   * another node for rebalancing, and pause, wait for the run to end.)
   *
   * Its `aborted`, `reason` and `throwIfAborted()` compare the session's local deadline (monotonic clock)
   * when they are asked, not when a timer gets to run: after a pause, the handler's next look at the
   * signal already sees the loss, even if its own timer fired before any of baton's.
   */
  readonly signal: AbortSignal;
  /**
   * Throws NotOwnerError, and aborts `signal`, unless this run's ownership is provably held at this very
   * moment: the lease was not ended and the session's local deadline has not passed. Synchronous, so
   * nothing can run between the check and your next statement: call it right before a side effect
   * outside the store (an HTTP call, a write to your own database), after the last `await` that precedes
   * it. It cannot see what the store decided behind the node's back (a session dropped by an operator);
   * put {@link TaskContext.token} into the side effect for that. Node shutdown and `timeout` do not make
   * it throw: the node still owns the task until the run has returned.
   */
  assertOwner(): void;
  readonly checkpoint: Checkpoint<T>;
  readonly log: Logger;
  /**
   * Attaches what this attempt printed and how its command ended to the run's record (shown by
   * `baton status`, the HTTP API and the dashboard). The last call of the last attempt wins; each stream
   * is cut to its last {@link RUN_OUTPUT_MAX_CHARS} characters. Used by the agent for shell commands.
   */
  recordOutput(output: RunOutput): void;
}

/** Longest stdout / stderr tail kept in a run record, in characters (the agent keeps 64 KiB of bytes). */
export const RUN_OUTPUT_MAX_CHARS = 64 * 1024;

/** What a run's command printed and how it ended (see {@link TaskContext.recordOutput}). */
export interface RunOutput {
  /** Exit code, or null when a signal ended the command or it never started. */
  readonly exitCode: number | null;
  /** The signal that ended the command (`SIGTERM`, `SIGKILL`), or null. */
  readonly signal: string | null;
  readonly pid?: number;
  /** The end of stdout / stderr (UTF-8, cut at a character boundary). */
  readonly stdout: string;
  readonly stderr: string;
  /** Bytes written to each stream in total: more than the tail's length means its start was dropped. */
  readonly stdoutBytes: number;
  readonly stderrBytes: number;
}

/** Cuts each stream of an output to its last {@link RUN_OUTPUT_MAX_CHARS} characters. */
export function boundRunOutput(output: RunOutput): RunOutput {
  const cut = (text: string) => (text.length > RUN_OUTPUT_MAX_CHARS ? text.slice(text.length - RUN_OUTPUT_MAX_CHARS) : text);
  return { ...output, stdout: cut(output.stdout), stderr: cut(output.stderr) };
}

export type TaskHandler<T = unknown> = (ctx: TaskContext<T>) => Promise<void> | void;

/** What the producer of a `dispatch` task gets: a task context that can enqueue work items. */
export interface ProducerContext<P = unknown, T = unknown> extends TaskContext<T> {
  /**
   * Enqueues `payload`, fenced by the producer's token (a zombie ex-producer cannot enqueue). With `id`,
   * an item still queued (or dead-lettered) under that id is not enqueued twice: returns false.
   * `delay` keeps it invisible to consumers for that long.
   */
  enqueue(payload: P, options?: { readonly id?: string; readonly delay?: Duration }): Promise<boolean>;
}

/** What a consumer of a `dispatch` task gets for one delivery of one item. */
export interface ItemContext<P = unknown> {
  readonly task: string;
  readonly id: string;
  readonly payload: P;
  /** 1 for the first delivery; an item is dead-lettered after `queue.maxAttempts` failed deliveries. */
  readonly attempt: number;
  readonly node: NodeInfo;
  /** Aborts when the item's visibility could not be extended (another node may get it) or the node shuts down. */
  readonly signal: AbortSignal;
  readonly log: Logger;
}

/** The handlers of a `dispatch` task: one node produces on schedule, every node consumes. */
export interface DispatchHandlers<P = unknown, T = unknown> {
  readonly produce: (ctx: ProducerContext<P, T>) => Promise<void> | void;
  /** Resolving acknowledges the item (it is deleted); throwing makes it visible again after `queue.backoff`. */
  readonly consume: (item: ItemContext<P>) => Promise<void> | void;
}

export interface TaskDefinition {
  readonly name: TaskName;
  readonly schedule: Schedule;
  readonly history: number;
  readonly policy: RunPolicy;
  readonly mode: ResolvedMode;
  readonly handler: TaskHandler<never>;
  /** For `dispatch`: the consumer. */
  readonly consume?: (item: ItemContext<never>) => Promise<void> | void;
  /** Run by each new owner before its first run (see {@link TaskOptions.onAcquire}). */
  readonly onAcquire?: AcquireHook;
  /** Everything that must be equal on every node declaring the task, and its short hash. */
  readonly declaration: NormalizedDeclaration;
  readonly fingerprint: string;
}

/** A task's options in one canonical form: compared between nodes to detect conflicting declarations. */
export interface NormalizedDeclaration {
  readonly schedule: string;
  readonly history: number;
  readonly mode: ResolvedMode;
  readonly policy: RunPolicy;
}

const KNOWN_OPTIONS = new Set<string>(['every', 'cron', 'timezone', 'at', 'history', 'onAcquire', ...RUN_OPTION_NAMES, ...MODE_OPTION_NAMES]);

export function defineTask(name: unknown, options: unknown, handler: unknown): TaskDefinition {
  assertTaskName(name);
  const where = `task "${name}"`;
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(`${where}: options must be an object such as { every: '10s' }, got ${JSON.stringify(options)}`);
  }
  const unknown = Object.keys(options).filter((key) => !KNOWN_OPTIONS.has(key));
  if (unknown.length > 0) {
    throw new ConfigError(`${where}: unknown option ${unknown.map((k) => JSON.stringify(k)).join(', ')} (known: ${[...KNOWN_OPTIONS].join(', ')})`);
  }
  const opts = options as TaskOptions;
  const mode = parseMode(opts, where);
  const handlers = parseHandlers(handler, mode, where);
  const history = opts.history ?? 100;
  if (!Number.isInteger(history) || history < 1 || history > 100_000) {
    throw new ConfigError(`${where}: history must be an integer from 1 to 100000, got ${JSON.stringify(opts.history)}`);
  }
  if (opts.onAcquire !== undefined && typeof opts.onAcquire !== 'function') {
    throw new ConfigError(`${where}: onAcquire must be a function (ctx) => void | Promise<void>, got ${typeof opts.onAcquire}`);
  }
  const schedule = parseSchedule(opts, where);
  const policy = parseRunPolicy(opts, schedule, name, where);
  const declaration: NormalizedDeclaration = { schedule: schedule.description, history, mode, policy };
  const onAcquire = opts.onAcquire ? { onAcquire: opts.onAcquire } : {};
  return { name, schedule, history, policy, mode, ...handlers, ...onAcquire, declaration, fingerprint: fingerprintOf(declaration) };
}

function parseHandlers(handler: unknown, mode: ResolvedMode, where: string): Pick<TaskDefinition, 'handler' | 'consume'> {
  if (mode.kind === 'dispatch') {
    const h = handler as Partial<DispatchHandlers> | null;
    if (typeof h !== 'object' || h === null || typeof h.produce !== 'function' || typeof h.consume !== 'function') {
      throw new ConfigError(`${where}: mode "dispatch" needs handlers { produce(ctx), consume(item) }`);
    }
    return { handler: h.produce as unknown as TaskHandler<never>, consume: h.consume as (item: ItemContext<never>) => void };
  }
  if (typeof handler !== 'function') throw new ConfigError(`${where}: handler must be a function`);
  return { handler: handler as TaskHandler<never> };
}

/** 12 hex digits of SHA-256 over the canonical JSON: equal declarations, equal fingerprints. */
export function fingerprintOf(declaration: NormalizedDeclaration): string {
  return createHash('sha256').update(JSON.stringify(declaration)).digest('hex').slice(0, 12);
}

/**
 * The option names whose values differ between two declarations of a task, as a user wrote them
 * (`every`/`cron` → `schedule`, `jitterMs` → `jitter`, a mode's fields → `mode`, `prefer`, `shards` …).
 */
export function differingFields(a: NormalizedDeclaration, b: NormalizedDeclaration): string[] {
  const fields: string[] = [];
  if (a.schedule !== b.schedule) fields.push('schedule');
  if (a.history !== b.history) fields.push('history');
  if (a.mode.kind !== b.mode.kind) fields.push('mode');
  else {
    const am = a.mode as unknown as Record<string, unknown>;
    const bm = b.mode as unknown as Record<string, unknown>;
    const names: Record<string, string> = { prefer: 'prefer', failbackAfterMs: 'failbackAfter', count: 'shards', items: 'shards', queue: 'queue' };
    for (const key of Object.keys(names)) {
      if (JSON.stringify(am[key]) !== JSON.stringify(bm[key]) && !fields.includes(names[key] as string)) fields.push(names[key] as string);
    }
  }
  const ap = a.policy as unknown as Record<string, unknown>;
  const bp = b.policy as unknown as Record<string, unknown>;
  for (const key of Object.keys(ap)) {
    if (JSON.stringify(ap[key]) !== JSON.stringify(bp[key])) fields.push(key.replace(/Ms$/, ''));
  }
  return fields;
}

/** A run record: the tick claim and its outcome, one per tick in the store. */
export interface RunRecord {
  readonly task: TaskName;
  /** The unit the run belongs to (names.ts): the task's name, `task#i` or `task@node`. */
  readonly unit: UnitName;
  readonly tick: number;
  readonly status: 'running' | RunOutcome | 'missed';
  readonly node?: string;
  readonly host?: string;
  readonly pid?: number;
  readonly token?: string;
  readonly startedAt?: number;
  readonly endedAt?: number;
  readonly durationMs?: number;
  readonly lateMs?: number;
  /**
   * When the tick was claimed, if before `startedAt`: claimed ahead of its time (the handler starts at
   * `startedAt`). A run left `running` by an earlier owner may then never have started.
   */
  readonly claimedAt?: number;
  /** The last attempt's error (with retries: earlier attempts' errors are replaced). */
  readonly error?: string;
  /** For status "missed": the range of ticks (this record's tick is the last) and why. */
  readonly missed?: { readonly from: number; readonly count: number; readonly reason: MissReason };
  /** Attempts made so far (written after each failed attempt when `retries` > 0, and at the end). */
  readonly attempts?: number;
  /** The jitter added to this tick's start, when the task has `jitter`. */
  readonly jitterMs?: number;
  /** A run requested with `cluster.trigger()`: true, with the trigger's id. Its `tick` is the request time. */
  readonly trigger?: boolean;
  readonly triggerId?: string;
  /** For a command (the agent): its exit status and the tail of its output (see {@link RunOutput}). */
  readonly output?: RunOutput;
}

/** Stored under `decl/<task>`: how the task was last declared, and by whom. */
export interface DeclarationRecord {
  readonly schedule: string;
  readonly mode: string;
  readonly fingerprint?: string;
  /** The shard count of a `sharded` task (lets any node trigger every shard). */
  readonly shards?: number;
  readonly node: string;
  readonly declaredAt: number;
}

/** Writes the declarations that changed (one read for all; writes only on change), until `signal` aborts. */
export async function publishDeclarations(store: Store, definitions: Iterable<TaskDefinition>, node: string, now: number, signal?: AbortSignal): Promise<void> {
  // One read for all tasks; writes only for what changed, a few at a time (a node may declare thousands).
  const current = new Map((await store.list<DeclarationRecord>(DECLARATION_PREFIX)).map((r) => [r.key, r.value.fingerprint]));
  const changed = [...definitions].filter((d) => current.get(declarationKey(d.name)) !== d.fingerprint);
  await mapInBatches(
    changed,
    16,
    (d) => {
      const record: DeclarationRecord = {
        schedule: d.schedule.description,
        mode: d.mode.kind,
        fingerprint: d.fingerprint,
        ...(d.mode.kind === 'sharded' ? { shards: d.mode.count } : {}),
        node,
        declaredAt: now,
      };
      // The full version too, once: a node seeing another version in a session names the fields that differ.
      return Promise.all([store.put(declarationKey(d.name), record), store.put(declarationVersionKey(d.name, d.fingerprint), d.declaration, { ifVersion: 'absent' })]);
    },
    () => signal?.aborted === true,
  );
}
