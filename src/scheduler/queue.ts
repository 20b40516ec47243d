/**
 * The work queue of a `dispatch` task: the producer (the task's owner) enqueues items, fenced by its
 * token; every node declaring the task consumes them.
 *
 * An item is a record `queue/<task>/<id>`. A consumer takes it with a compare-and-set that makes it
 * invisible for `visibilityTimeout` (store time) and extends that while its handler runs; acknowledging
 * deletes it (again on its version, so a consumer that lost the item cannot delete another's delivery).
 * A failed delivery makes it visible again after a backoff; after `maxAttempts` deliveries it moves to
 * `dead/<task>/<id>` with its last error. A consumer that dies leaves the item to reappear when its
 * visibility runs out.
 *
 * Guarantees: at-least-once delivery — an item is acknowledged by at most one delivery, and is
 * delivered again only after a failure, or after its consumer stopped extending it (crash, stall,
 * partition); a consumer that learns it lost the item sees its signal abort. Handlers must be
 * idempotent (use the item's `id`). Order: oldest first within what a consumer reads, not strict FIFO.
 */
import type { TaskName } from './names.js';
import { Backoff } from '../core/backoff.js';
import { sleep, type Clock } from '../core/clock.js';
import { parseDuration, type Duration } from '../core/duration.js';
import { ClosedError, ConfigError, NotOwnerError, toError } from '../core/errors.js';
import { randomId } from '../core/ids.js';
import type { Logger } from '../core/logger.js';
import type { NodeInfo } from '../core/node-info.js';
import type { Lease } from '../cluster/lease.js';
import type { Store, StoredRecord } from '../stores/contract.js';
import type { Emit } from './events.js';
import { HintWaker, recordsMatching } from './hints.js';
import type { ResolvedQueue } from './modes.js';
import type { ItemContext } from './task.js';

export const queuePrefix = (task: TaskName): string => `queue/${task}/`;
export const deadLetterPrefix = (task: TaskName): string => `dead/${task}/`;

/** A queued item as stored. */
export interface QueuedItem<P = unknown> {
  readonly id: string;
  readonly payload: P;
  /** Store time of the enqueue. */
  readonly enqueuedAt: number;
  /** Deliveries so far. */
  readonly attempts: number;
  /** Store time from which consumers may take it (0: at once). */
  readonly visibleAt: number;
  /** The node of the current delivery, while one is in progress. */
  readonly consumer?: string;
  readonly lastError?: string;
}

/** A dead-lettered item: delivered `attempts` times without success. */
export interface DeadLetter<P = unknown> extends QueuedItem<P> {
  readonly deadAt: number;
}

const ITEM_ID = /^[\w.:-]{1,200}$/;
/** Items a consumer looks at per poll: a delivery can be missed beyond it only while that many are invisible. */
const PEEK = 200;
/** Longest time between two looks at the queue without a store hint. */
const POLL_MS = 5000;
/** First pause after a failed look at the queue; it doubles up to POLL_MS. */
const RETRY_FIRST_MS = 200;

/** Enqueues one item under the producer's lease. False when an item with the same `id` is queued or dead. */
export async function enqueue(options: {
  readonly store: Store;
  readonly clock: Clock;
  readonly lease: Lease;
  readonly task: TaskName;
  readonly payload: unknown;
  readonly options?: { readonly id?: string; readonly delay?: Duration };
}): Promise<boolean> {
  const { store, lease, task, payload } = options;
  const id = options.options?.id;
  if (id !== undefined && (typeof id !== 'string' || !ITEM_ID.test(id))) {
    throw new ConfigError(`task "${task}": enqueue: id must be 1–200 letters, digits, '_', '.', ':' or '-', got ${JSON.stringify(id)}`);
  }
  if (payload === undefined) throw new ConfigError(`task "${task}": enqueue: payload is undefined (it must be JSON)`);
  const delayMs = options.options?.delay === undefined ? 0 : parseDuration(options.options.delay, `task "${task}": enqueue: delay`);
  if (id !== undefined && (await store.get(deadLetterPrefix(task) + id))) return false;
  const now = await store.time();
  const itemId = id ?? `${String(now).padStart(15, '0')}-${randomId(6)}`;
  const item: QueuedItem = { id: itemId, payload, enqueuedAt: now, attempts: 0, visibleAt: delayMs > 0 ? now + delayMs : 0 };
  const result = await lease.put(queuePrefix(task) + itemId, item, { ifVersion: 'absent' });
  return result.ok;
}

/** Consumes a dispatch task's queue on this node with up to `workers` items at a time. */
export class QueueConsumer {
  readonly #task: TaskName;
  readonly #queue: ResolvedQueue;
  readonly #consume: (item: ItemContext<never>) => Promise<void> | void;
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #node: NodeInfo;
  readonly #emit: Emit;
  readonly #log: Logger;
  readonly #mayConsume: () => boolean;
  readonly #stop = new AbortController();
  readonly #active = new Map<string, Promise<void>>();
  #loop: Promise<void> | undefined;

  constructor(options: {
    task: TaskName;
    queue: ResolvedQueue;
    consume: (item: ItemContext<never>) => Promise<void> | void;
    store: Store;
    clock: Clock;
    node: NodeInfo;
    emit: Emit;
    log: Logger;
    /** False while this node must stay out of the task (another version of it runs). */
    mayConsume: () => boolean;
  }) {
    this.#mayConsume = options.mayConsume;
    this.#task = options.task;
    this.#queue = options.queue;
    this.#consume = options.consume;
    this.#store = options.store;
    this.#clock = options.clock;
    this.#node = options.node;
    this.#emit = options.emit;
    this.#log = options.log;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops taking items, aborts the handlers in progress and waits for them (their items reappear later). */
  async stop(): Promise<void> {
    this.#stop.abort(new ClosedError(`task "${this.#task}": node is shutting down`));
    await this.#loop;
  }

  async #run(): Promise<void> {
    const stop = this.#stop.signal;
    const waker = new HintWaker(this.#store, this.#clock, recordsMatching(queuePrefix(this.#task)), 200);
    const backoff = new Backoff({ initialMs: RETRY_FIRST_MS, maxMs: POLL_MS });
    try {
      while (!stop.aborted) {
        if (this.#active.size >= this.#queue.workers) {
          await Promise.race([...this.#active.values()]);
          continue;
        }
        let waitMs = POLL_MS;
        try {
          if (!this.#mayConsume()) {
            await waker.wait(POLL_MS, stop).catch(() => undefined);
            continue;
          }
          const next = await this.#take();
          backoff.reset();
          if ('item' in next) {
            const delivery = this.#deliver(next.item).finally(() => {
              this.#active.delete(next.item.key);
              waker.wake();
            });
            this.#active.set(next.item.key, delivery);
            continue;
          }
          waitMs = Math.min(POLL_MS, next.waitMs);
        } catch (error) {
          if (stop.aborted) break;
          this.#emit('error', { where: `task "${this.#task}": queue`, error: toError(error) });
          // Deaf to hints until the back-off has passed: every enqueue is one, and a store that fails
          // fast would otherwise be asked once per hint (coalesced to 200 ms) for as long as it fails.
          await sleep(this.#clock, backoff.next(), stop).catch(() => undefined);
          continue;
        }
        await waker.wait(waitMs, stop).catch(() => undefined);
      }
    } finally {
      waker.close();
      await Promise.allSettled([...this.#active.values()]);
    }
  }

  /** Takes the oldest visible item (compare-and-set on its version), or says how long to wait for one. */
  async #take(): Promise<{ item: StoredRecord<QueuedItem> } | { waitMs: number }> {
    const [now, items] = await Promise.all([this.#store.time(), this.#store.list<QueuedItem>(queuePrefix(this.#task), { limit: PEEK })]);
    let waitMs = POLL_MS;
    for (const record of items) {
      if (this.#active.has(record.key)) continue;
      if (record.value.visibleAt > now) {
        waitMs = Math.min(waitMs, record.value.visibleAt - now);
        continue;
      }
      const taken: QueuedItem = {
        ...record.value,
        attempts: record.value.attempts + 1,
        visibleAt: now + this.#queue.visibilityMs,
        consumer: this.#node.id,
      };
      const result = await this.#store.put(record.key, taken, { ifVersion: record.version });
      if (result.ok) return { item: { ...record, value: taken, version: result.version } };
      waitMs = 0; // another consumer took it: look again at once
    }
    return { waitMs };
  }

  /** Runs the handler for one delivery, keeps the item invisible meanwhile, then acks, retries or dead-letters it. */
  async #deliver(record: StoredRecord<QueuedItem>): Promise<void> {
    const item = record.value;
    const lost = new AbortController();
    const signal = AbortSignal.any([lost.signal, this.#stop.signal]);
    let version = record.version;
    // Extensions and the final write change the version: one at a time.
    let writes = Promise.resolve();
    const extend = () => {
      writes = writes.then(async () => {
        if (signal.aborted) return;
        try {
          const now = await this.#store.time();
          const result = await this.#store.put(record.key, { ...item, visibleAt: now + this.#queue.visibilityMs }, { ifVersion: version });
          if (result.ok) version = result.version;
          else lost.abort(new NotOwnerError(`task "${this.#task}": item ${item.id} was taken by another consumer`));
        } catch (error) {
          this.#emit('error', { where: `task "${this.#task}": extend item ${item.id}`, error: toError(error) });
        }
      });
    };
    const extender = this.#every(Math.floor(this.#queue.visibilityMs / 3), extend, signal);
    let failure: Error | undefined;
    this.#emit('item:started', { task: this.#task, id: item.id, attempt: item.attempts });
    const started = this.#clock.monotonic();
    try {
      await this.#consume({
        task: this.#task,
        id: item.id,
        payload: item.payload as never,
        attempt: item.attempts,
        node: this.#node,
        signal,
        log: this.#log.child({ task: this.#task, item: item.id, attempt: item.attempts }),
      });
      if (signal.aborted) failure = toError(signal.reason);
    } catch (error) {
      failure = toError(error);
    } finally {
      extender();
      await writes;
    }
    const durationMs = this.#clock.monotonic() - started;
    if (lost.signal.aborted) {
      this.#emit('item:finished', { task: this.#task, id: item.id, attempt: item.attempts, outcome: 'lost', durationMs });
      return;
    }
    await this.#settle(record.key, item, version, failure, durationMs).catch((error: unknown) =>
      this.#emit('error', { where: `task "${this.#task}": settle item ${item.id}`, error: toError(error) }),
    );
  }

  async #settle(key: string, item: QueuedItem, version: number, failure: Error | undefined, durationMs: number): Promise<void> {
    const base = { task: this.#task, id: item.id, attempt: item.attempts, durationMs };
    if (!failure) {
      const deleted = await this.#store.delete(key, { ifVersion: version });
      this.#emit('item:finished', { ...base, outcome: deleted ? 'succeeded' : 'lost' });
      return;
    }
    const error = failure.stack ?? failure.message;
    const now = await this.#store.time();
    const { consumer: _consumer, ...rest } = item;
    // A shutdown is not the item's fault: it is visible again at once and keeps its attempt count.
    const shutdown = this.#stop.signal.aborted;
    if (item.attempts >= this.#queue.maxAttempts && !shutdown) {
      const dead: DeadLetter = { ...rest, lastError: error, deadAt: now };
      await this.#store.put(deadLetterPrefix(this.#task) + item.id, dead);
      await this.#store.delete(key, { ifVersion: version });
      this.#emit('item:finished', { ...base, outcome: 'dead', error: failure });
      return;
    }
    const { initialMs, maxMs } = this.#queue.backoff;
    const delay = shutdown ? 0 : Math.min(maxMs, initialMs * 2 ** Math.min(30, item.attempts - 1));
    const retry: QueuedItem = { ...rest, attempts: shutdown ? item.attempts - 1 : item.attempts, visibleAt: now + delay, lastError: error };
    await this.#store.put(key, retry, { ifVersion: version });
    this.#emit('item:finished', { ...base, outcome: shutdown ? 'aborted' : 'failed', error: failure });
  }

  /** Calls `fn` every `ms` until `signal` aborts or the returned function is called. */
  #every(ms: number, fn: () => void, signal: AbortSignal): () => void {
    const stopped = new AbortController();
    const both = AbortSignal.any([signal, stopped.signal]);
    void (async () => {
      for (;;) {
        try {
          await sleep(this.#clock, ms, both);
        } catch {
          return;
        }
        fn();
      }
    })();
    return () => stopped.abort();
  }
}

/** Dead letters of a task, oldest first. */
export async function listDeadLetters<P = unknown>(store: Store, task: TaskName, limit = 1000): Promise<DeadLetter<P>[]> {
  return (await store.list<DeadLetter<P>>(deadLetterPrefix(task), { limit })).map((r) => r.value);
}

/** Puts a dead letter back into the queue with a fresh attempt count. False when there is no such dead letter. */
export async function requeueDeadLetter(store: Store, task: TaskName, id: string): Promise<boolean> {
  const dead = await store.get<DeadLetter>(deadLetterPrefix(task) + id);
  if (!dead) return false;
  const { deadAt: _deadAt, ...item } = dead.value;
  const now = await store.time();
  const written = await store.put(queuePrefix(task) + id, { ...item, attempts: 0, visibleAt: 0, enqueuedAt: now } satisfies QueuedItem, { ifVersion: 'absent' });
  if (written.ok) await store.delete(deadLetterPrefix(task) + id, { ifVersion: dead.version });
  return written.ok;
}

/** Items waiting or in delivery. */
export async function queueDepth(store: Store, task: TaskName): Promise<number> {
  return (await store.list(queuePrefix(task))).length;
}
