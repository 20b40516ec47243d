/**
 * The memory store: a real Store held in this process's memory. It is what unit tests and deterministic
 * simulations run on, so it keeps every guarantee of the contract (it passes the same conformance suite);
 * its time is the injected clock, so TTLs are driven by `FakeClock.advance()` in tests.
 *
 * Several handles (`backend.connect(cluster)`) share one {@link MemoryBackend} to simulate several nodes;
 * `backend.sever(handle)` makes one handle's calls fail like a lost connection, for fault simulation.
 * Non-guarantees: nothing survives the process.
 */
import { systemClock, type Clock } from '../../core/clock.js';
import { ClosedError, SessionExpiredError, StoreUnavailableError } from '../../core/errors.js';
import { randomId } from '../../core/ids.js';
import type { NodeInfo } from '../../core/node-info.js';
import type {
  AcquireResult,
  Change,
  Guard,
  Holder,
  ListOptions,
  SessionRecord,
  Store,
  StoredRecord,
  WriteCondition,
  WriteResult,
} from '../contract.js';
import { ChangeListeners } from '../change-listeners.js';
import { assertDistinctKeys } from '../many-keys.js';

interface SessionState {
  id: string;
  info: NodeInfo;
  ttlMs: number;
  openedAt: number;
  expiresAt: number;
}

interface ClusterState {
  sessions: Map<string, SessionState>;
  owners: Map<string, Holder>;
  records: Map<string, StoredRecord>;
  lastToken: bigint;
}

export class MemoryBackend {
  readonly clock: Clock;
  readonly #clusters = new Map<string, ClusterState>();
  readonly #handles = new Set<MemoryStore>();
  readonly #severed = new WeakSet<MemoryStore>();

  constructor(options: { clock?: Clock } = {}) {
    this.clock = options.clock ?? systemClock;
  }

  /** A new handle on `cluster` (like a new connection). */
  connect(cluster: string): MemoryStore {
    const handle = new MemoryStore(this, cluster);
    this.#handles.add(handle);
    return handle;
  }

  /** Makes every call through `handle` fail with StoreUnavailableError until {@link heal}. */
  sever(handle: MemoryStore): void {
    this.#severed.add(handle);
  }

  /** Ends {@link sever}: like a watch re-established after a reconnect, the handle hears `any` (it missed hints). */
  heal(handle: MemoryStore): void {
    if (this.#severed.delete(handle)) handle.deliver({ scope: 'any' });
  }

  /** @internal */
  isSevered(handle: MemoryStore): boolean {
    return this.#severed.has(handle);
  }

  /** @internal */
  state(cluster: string): ClusterState {
    let state = this.#clusters.get(cluster);
    if (!state) {
      state = { sessions: new Map(), owners: new Map(), records: new Map(), lastToken: 0n };
      this.#clusters.set(cluster, state);
    }
    return state;
  }

  /** @internal */
  clusters(): string[] {
    const held = [...this.#clusters].filter(([, s]) => s.sessions.size > 0 || s.owners.size > 0 || s.records.size > 0);
    return held.map(([name]) => name);
  }

  /** @internal */
  notify(cluster: string, change: Change): void {
    for (const handle of this.#handles) if (handle.cluster === cluster) handle.deliver(change);
  }

  /** @internal */
  forget(handle: MemoryStore): void {
    this.#handles.delete(handle);
  }
}

const processBackends = new Map<string, MemoryBackend>();

/** The backend behind `memory:` / `memory:NAME` URLs: one per name per process. */
export function sharedMemoryBackend(name: string, clock?: Clock): MemoryBackend {
  let backend = processBackends.get(name);
  if (!backend) {
    backend = new MemoryBackend(clock ? { clock } : {});
    processBackends.set(name, backend);
  }
  return backend;
}

export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  readonly features = { crashDetection: false, watch: 'push' } as const;
  readonly cluster: string;
  readonly #backend: MemoryBackend;
  readonly #listeners = new ChangeListeners();
  #closed = false;

  constructor(backend: MemoryBackend, cluster: string) {
    this.#backend = backend;
    this.cluster = cluster;
  }

  async time(): Promise<number> {
    this.#check();
    return this.#backend.clock.now();
  }

  async openSession(info: NodeInfo, ttlMs: number): Promise<{ id: string }> {
    const state = this.#state();
    const now = this.#mono();
    const id = randomId();
    state.sessions.set(id, { id, info, ttlMs, openedAt: now, expiresAt: now + ttlMs });
    this.#notify({ scope: 'sessions', key: id });
    return { id };
  }

  async renewSession(sessionId: string): Promise<boolean> {
    const state = this.#state();
    const session = this.#live(state, sessionId);
    if (!session) return false;
    session.expiresAt = this.#mono() + session.ttlMs;
    return true;
  }

  async updateSessionInfo(sessionId: string, info: NodeInfo): Promise<boolean> {
    const state = this.#state();
    const session = this.#live(state, sessionId);
    if (!session) return false;
    session.info = info;
    this.#notify({ scope: 'sessions', key: sessionId });
    return true;
  }

  async closeSession(sessionId: string): Promise<void> {
    const state = this.#state();
    if (this.#drop(state, sessionId)) this.#notify({ scope: 'sessions', key: sessionId });
  }

  async listSessions(): Promise<SessionRecord[]> {
    const state = this.#state();
    const now = this.#mono();
    return [...state.sessions.values()]
      .filter((s) => s.expiresAt > now)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((s) => ({ id: s.id, info: s.info, ttlMs: s.ttlMs, ageMs: now - s.openedAt, expiresInMs: s.expiresAt - now }));
  }

  async tryAcquire(key: string, sessionId: string): Promise<AcquireResult> {
    const state = this.#state();
    if (!this.#live(state, sessionId)) {
      throw new SessionExpiredError(`memory store: session ${sessionId} is not live; cannot acquire "${key}"`);
    }
    const current = this.#liveHolder(state, key);
    if (current) {
      return current.sessionId === sessionId ? { acquired: true, token: current.token } : { acquired: false, holder: current };
    }
    state.lastToken += 1n;
    const holder: Holder = { key, token: state.lastToken, sessionId, acquiredAt: this.#backend.clock.now() };
    state.owners.set(key, holder);
    this.#notify({ scope: 'owners', key, holder });
    return { acquired: true, token: holder.token };
  }

  async tryAcquireMany(keys: readonly string[], sessionId: string): Promise<AcquireResult[]> {
    assertDistinctKeys('memory store: tryAcquireMany', keys);
    const results: AcquireResult[] = [];
    for (const key of keys) results.push(await this.tryAcquire(key, sessionId));
    return results;
  }

  async releaseMany(leases: readonly Guard[]): Promise<boolean[]> {
    assertDistinctKeys('memory store: releaseMany', leases.map((l) => l.key));
    const results: boolean[] = [];
    for (const { key, token } of leases) results.push(await this.release(key, token));
    return results;
  }

  async release(key: string, token: bigint): Promise<boolean> {
    const state = this.#state();
    const current = state.owners.get(key);
    if (!current || current.token !== token) return false;
    state.owners.delete(key);
    this.#notify({ scope: 'owners', key, holder: null });
    return true;
  }

  async holder(key: string): Promise<Holder | null> {
    return this.#liveHolder(this.#state(), key) ?? null;
  }

  async listHolders(prefix: string): Promise<Holder[]> {
    const state = this.#state();
    return [...state.owners.keys()]
      .filter((key) => key.startsWith(prefix))
      .sort()
      .map((key) => this.#liveHolder(state, key))
      .filter((h): h is Holder => h !== undefined);
  }

  async get<T>(key: string): Promise<StoredRecord<T> | null> {
    const record = this.#state().records.get(key);
    return record ? (clone(record) as StoredRecord<T>) : null;
  }

  async put(key: string, value: unknown, condition: WriteCondition = {}): Promise<WriteResult> {
    const state = this.#state();
    const refused = this.#refuse(state, key, condition);
    if (refused) return { ok: false, reason: refused };
    const version = (state.records.get(key)?.version ?? 0) + 1;
    state.records.set(key, { key, value: JSON.parse(JSON.stringify(value)) as unknown, version, updatedAt: this.#backend.clock.now() });
    this.#notify({ scope: 'records', key });
    return { ok: true, version };
  }

  async list<T>(prefix: string, options: ListOptions = {}): Promise<StoredRecord<T>[]> {
    const state = this.#state();
    const keys = [...state.records.keys()].filter((k) => k.startsWith(prefix)).sort();
    if (options.reverse) keys.reverse();
    const limited = options.limit === undefined ? keys : keys.slice(0, options.limit);
    return limited.map((k) => clone(state.records.get(k) as StoredRecord) as StoredRecord<T>);
  }

  async delete(key: string, condition: WriteCondition = {}): Promise<boolean> {
    const state = this.#state();
    if (!state.records.has(key) || this.#refuse(state, key, condition)) return false;
    state.records.delete(key);
    this.#notify({ scope: 'records', key });
    return true;
  }

  async deleteBefore(prefix: string, beforeKey: string): Promise<number> {
    const state = this.#state();
    let count = 0;
    for (const key of [...state.records.keys()]) {
      if (key.startsWith(prefix) && key < beforeKey) {
        state.records.delete(key);
        count += 1;
      }
    }
    return count;
  }

  async listClusters(): Promise<string[]> {
    this.#check();
    return this.#backend.clusters();
  }

  watch(listener: (change: Change) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    this.#backend.forget(this);
  }

  /** @internal delivers a change to this handle's listeners, asynchronously like a real store. */
  deliver(change: Change): void {
    if (this.#closed || this.#backend.isSevered(this)) return;
    queueMicrotask(() => this.#listeners.emit(change));
  }

  #check(): void {
    if (this.#closed) throw new ClosedError(`memory store (cluster "${this.cluster}"): handle is closed`);
    if (this.#backend.isSevered(this)) {
      throw new StoreUnavailableError(`memory store (cluster "${this.cluster}"): connection severed`);
    }
  }

  #state(): ClusterState {
    this.#check();
    return this.#backend.state(this.cluster);
  }

  #mono(): number {
    return this.#backend.clock.monotonic();
  }

  #notify(change: Change): void {
    this.#backend.notify(this.cluster, change);
  }

  #live(state: ClusterState, sessionId: string): SessionState | undefined {
    const session = state.sessions.get(sessionId);
    if (!session) return undefined;
    if (session.expiresAt > this.#mono()) return session;
    this.#drop(state, sessionId);
    return undefined;
  }

  #drop(state: ClusterState, sessionId: string): boolean {
    if (!state.sessions.delete(sessionId)) return false;
    for (const [key, holder] of state.owners) {
      if (holder.sessionId === sessionId) {
        state.owners.delete(key);
        this.#notify({ scope: 'owners', key, holder: null });
      }
    }
    return true;
  }

  #liveHolder(state: ClusterState, key: string): Holder | undefined {
    const holder = state.owners.get(key);
    if (!holder) return undefined;
    return this.#live(state, holder.sessionId) ? holder : undefined;
  }

  #refuse(state: ClusterState, key: string, condition: WriteCondition): 'version' | 'fenced' | undefined {
    if (condition.guard) {
      const holder = this.#liveHolder(state, condition.guard.key);
      if (!holder || holder.token !== condition.guard.token) return 'fenced';
    }
    const current = state.records.get(key);
    if (condition.ifVersion === 'absent' && current) return 'version';
    if (typeof condition.ifVersion === 'number' && current?.version !== condition.ifVersion) return 'version';
    return undefined;
  }
}

function clone<T>(value: T): T {
  return structuredClone(value);
}
