/**
 * Shared state: small cluster-wide values (a feature switch, a cursor, the current leader's view of
 * something) with versions, compare-and-set and a change stream. One store record per name,
 * `state/<name>`; values are JSON of at most 64 KiB.
 *
 * Guarantees:
 * - Every write gives the record a new version, one greater than the previous; `cas` writes only when
 *   the version is still the expected one (or the record is absent), atomically in the store: of any
 *   number of concurrent `cas` on one version, exactly one succeeds.
 * - A write can carry a lock's or permit's `guard` and is then refused (NotOwnerError) once that key moved
 *   on: fencing as data (invariant 2).
 * - `watch()` yields the current value first (when there is one), then each newer value it sees, in
 *   strictly increasing version order, never the same version twice. It re-reads on every store change
 *   hint and at least every `scanEvery`; it ends quietly when its signal aborts or the cluster closes, and
 *   throws SessionExpiredError when the node's session is lost (its view may be stale from then on).
 *
 * Non-guarantees: `watch()` is a view of the latest value, not a log: versions written in quick
 * succession may be skipped (it always catches up to the newest). Values go through JSON: a Date comes back
 * as a string, `undefined` properties vanish. Not for bulk data: store a reference to it instead.
 */
import { ConfigError, NotOwnerError, SessionExpiredError, toError, ValueError } from '../core/errors.js';
import type { Guard, Store, StoredRecord } from '../stores/contract.js';
import { assertKnownOptions, assertPrimitiveName, assertSignal, pauseAfterFailure, retryBackoff, type PrimitiveDeps } from './claims.js';
import { ChangeHints } from './change-hints.js';
import type { LiveSession } from './session-keeper.js';

/** Largest value, as bytes of UTF-8 JSON. */
export const MAX_STATE_BYTES = 64 * 1024;

export const STATE_PREFIX = 'state/';
export const stateKey = (name: string): string => `${STATE_PREFIX}${name}`;

export interface Versioned<T> {
  readonly value: T;
  /** Starts at 1 and grows by one on every write. */
  readonly version: number;
}

export interface WriteOptions {
  /** A lock's or permit's guard: the write is refused (NotOwnerError) unless that key is still held with it. */
  readonly guard?: Guard;
}

export interface WatchOptions {
  /** Ends the stream (quietly) when it aborts. */
  readonly signal?: AbortSignal;
}

export class SharedState<T = unknown> {
  readonly name: string;
  readonly key: string;
  readonly #deps: PrimitiveDeps;
  readonly #what: string;

  /** @internal use `cluster.state()`. */
  constructor(deps: PrimitiveDeps, name: unknown) {
    assertPrimitiveName('state', name);
    this.name = name;
    this.key = stateKey(name);
    this.#deps = deps;
    this.#what = `state "${name}"`;
  }

  /** The current value and version, or undefined when never written. */
  async get(): Promise<Versioned<T> | undefined> {
    this.#deps.assertRunning(this.#what);
    return toVersioned(await this.#deps.store.get<T>(this.key));
  }

  /**
   * Writes `value` whatever the current version. Returns the new version.
   * @throws ValueError (not JSON, or over 64 KiB), NotOwnerError (guard refused).
   */
  async set(value: T, options?: WriteOptions): Promise<number> {
    this.#deps.assertRunning(this.#what);
    const guard = this.#guardOf(options);
    assertStorable(this.#what, value);
    const result = await this.#deps.store.put(this.key, value, guard ? { guard } : {});
    if (result.ok) return result.version;
    if (result.reason === 'fenced') throw this.#fenced(guard);
    // Unconditional writes are refused only by fencing; say so if a store ever disagrees.
    throw new ValueError(`${this.#what}: the store refused an unconditional write (${result.reason})`);
  }

  /**
   * Writes `value` only if the record is still at `expected` (a version from get/watch, or `'absent'`:
   * only if it was never written). Returns whether it wrote: false means another writer was first; read
   * again and retry if you still want to.
   * @throws ValueError, NotOwnerError (guard refused), ConfigError for a bad `expected`.
   */
  async cas(expected: number | 'absent', value: T, options?: WriteOptions): Promise<boolean> {
    this.#deps.assertRunning(this.#what);
    if (expected !== 'absent' && (typeof expected !== 'number' || !Number.isInteger(expected) || expected < 1)) {
      throw new ConfigError(`${this.#what}: cas expected a version (an integer ≥ 1) or 'absent', got ${JSON.stringify(expected)}`);
    }
    const guard = this.#guardOf(options);
    assertStorable(this.#what, value);
    const result = await this.#deps.store.put(this.key, value, { ifVersion: expected, ...(guard ? { guard } : {}) });
    if (result.ok) return true;
    if (result.reason === 'fenced') throw this.#fenced(guard);
    return false;
  }

  /**
   * The current value, then every newer one (see the module notes).
   * @throws SessionExpiredError (from the iterator) when the node's session is lost.
   */
  watch(options?: WatchOptions): AsyncIterableIterator<Versioned<T>> {
    assertKnownOptions(`${this.#what}: watch`, options, ['signal']);
    assertSignal(`${this.#what}: watch`, options?.signal);
    this.#deps.assertRunning(this.#what);
    const session = this.#deps.keeper.current;
    return watchRecord<T>(this.#deps, this.key, this.#what, session, options?.signal);
  }

  #guardOf(options: WriteOptions | undefined): Guard | undefined {
    assertKnownOptions(this.#what, options, ['guard']);
    const guard = options?.guard;
    if (guard !== undefined && (typeof guard?.key !== 'string' || typeof guard?.token !== 'bigint')) {
      throw new ConfigError(`${this.#what}: guard must be { key: string, token: bigint } (a lock's or permit's guard)`);
    }
    return guard;
  }

  #fenced(guard: Guard | undefined): NotOwnerError {
    return new NotOwnerError(`${this.#what}: write refused: "${guard?.key}" is no longer held with token ${guard?.token}`);
  }
}

async function* watchRecord<T>(
  deps: PrimitiveDeps,
  key: string,
  what: string,
  startSession: LiveSession | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<Versioned<T>> {
  const { store, clock, pollMs, closed } = deps;
  // Bound to the session live when the stream was created (or, lacking one, to the first one seen).
  const session = startSession ?? deps.keeper.current;
  const stop = AbortSignal.any([closed, ...(signal ? [signal] : []), ...(session ? [session.signal] : [])]);
  const hints = new ChangeHints(store, clock, (c) => c.scope === 'any' || c.scope === 'connection' || (c.scope === 'records' && (c.key === undefined || c.key === key)));
  let last = 0;
  const backoff = retryBackoff(pollMs);
  try {
    for (;;) {
      if (signal?.aborted || closed.aborted) return;
      if (!session || session.signal.aborted) throw sessionLost(what, session);
      let record: StoredRecord<T> | null;
      try {
        record = await store.get<T>(key);
      } catch (error) {
        // A store error only delays the next look; the session keeper decides about the rest.
        if (signal?.aborted || closed.aborted) return;
        deps.onError(what, toError(error));
        await pauseAfterFailure(clock, backoff.next(), stop);
        continue;
      }
      backoff.reset();
      if (signal?.aborted || closed.aborted) return;
      if (record && record.version > last) {
        last = record.version;
        yield { value: record.value, version: record.version };
        continue; // the consumer took its time: look again before sleeping
      }
      await hints.next(pollMs, stop);
    }
  } finally {
    hints.close();
  }
}

function sessionLost(what: string, session: LiveSession | undefined): SessionExpiredError {
  const reason = session?.signal.reason as Error | undefined;
  return new SessionExpiredError(`${what}: watch stopped: ${reason?.message ?? 'this node has no live session'}`);
}

function toVersioned<T>(record: StoredRecord<T> | null): Versioned<T> | undefined {
  return record ? { value: record.value, version: record.version } : undefined;
}

/** Throws ValueError unless `value` is JSON of at most {@link MAX_STATE_BYTES} bytes. */
export function assertStorable(what: string, value: unknown): void {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new ValueError(`${what}: value is not JSON-serialisable (${(error as Error).message})`, { cause: error });
  }
  if (json === undefined) throw new ValueError(`${what}: value is not JSON-serialisable (got ${typeof value})`);
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes > MAX_STATE_BYTES) {
    throw new ValueError(
      `${what}: value is ${bytes} bytes of JSON, over the limit of ${MAX_STATE_BYTES} (64 KiB): shared state is for small values; store bulk data elsewhere and share a reference to it`,
    );
  }
}
