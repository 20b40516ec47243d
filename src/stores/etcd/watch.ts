/**
 * Change notification for one etcd store handle: one etcd watch on the cluster's key range, opened with
 * the first listener and cancelled with the last. The scope comes from the changed key's path
 * (`sessions/`, `owners/`, `records/`), so lease expiry (etcd deletes the keys) is seen like any write.
 *
 * Guarantees: a change committed by any client reaches the listeners within one etcd round trip while
 * the stream is up. The `etcd3` watch manager reconnects a broken stream by itself (capped backoff, see
 * connection.ts) and resumes from the last revision seen; listeners get an `any` hint when it does,
 * since changes may have been missed if the revision was compacted meanwhile. A watch that etcd cancels
 * (compaction, permissions) is re-created after a pause, also with an `any` hint; the pause doubles while
 * etcd keeps cancelling (a lost permission), so neither etcd nor the loops that every `any` hint wakes
 * are asked twice a second for as long as it lasts.
 *
 * Non-guarantees: hints may be late, merged or spurious; the state must be re-read. A listener that
 * throws does not stop the others nor the stream.
 */
import type { Etcd3, IWatchResponse, Watcher } from 'etcd3';
import { Backoff } from '../../core/backoff.js';
import type { Clock } from '../../core/clock.js';
import type { Change } from '../contract.js';
import { ChangeListeners } from '../change-listeners.js';
import type { KeyLayout } from './keys.js';

/** Pause before re-creating a watch that etcd cancelled; it doubles up to RECREATE_MAX_MS while etcd keeps cancelling. */
const RECREATE_AFTER_MS = 500;
const RECREATE_MAX_MS = 10_000;

export class EtcdWatch {
  readonly #client: Etcd3;
  readonly #keys: KeyLayout;
  readonly #clock: Clock;
  readonly #listeners = new ChangeListeners();
  #watcher: Watcher | undefined;
  #cancelRecreate: (() => void) | undefined;
  #disconnected = false;
  #closed = false;
  readonly #recreate = new Backoff({ initialMs: RECREATE_AFTER_MS, maxMs: RECREATE_MAX_MS });
  /** Cancellations in flight, awaited by close(). */
  readonly #stopping = new Set<Promise<void>>();

  constructor(client: Etcd3, keys: KeyLayout, clock: Clock) {
    this.#client = client;
    this.#keys = keys;
    this.#clock = clock;
  }

  add(listener: (change: Change) => void): () => void {
    const unsubscribe = this.#listeners.subscribe(listener, () => this.#stop());
    if (!this.#watcher && !this.#cancelRecreate) this.#start();
    return unsubscribe;
  }

  /** Cancels the watch, waiting at most `timeoutMs` for etcd to confirm (a dead stream never would). */
  async close(timeoutMs: number): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#stop();
    let cancelTimer: (() => void) | undefined;
    const timeout = new Promise<void>((resolve) => {
      cancelTimer = this.#clock.setTimer(timeoutMs, resolve);
    });
    await Promise.race([Promise.all(this.#stopping), timeout]);
    cancelTimer?.();
  }

  #start(): void {
    this.#disconnected = false;
    const watcher = this.#client.watch().prefix(this.#keys.root).watcher();
    watcher.on('data', (response: IWatchResponse) => {
      if (this.#watcher !== watcher) return; // being cancelled: its listeners are gone
      for (const event of response.events) {
        for (const change of this.#keys.changesOf(event.kv.key, event.type === 'Delete')) this.#listeners.emit(change);
      }
    });
    watcher.on('disconnected', () => {
      this.#disconnected = true;
    });
    watcher.on('connected', () => {
      if (this.#watcher !== watcher) return;
      this.#recreate.reset();
      // Reconnected: etcd replays from the last revision seen, but a compaction may have eaten some.
      if (this.#disconnected) this.#listeners.emit({ scope: 'any' });
      this.#disconnected = false;
    });
    // etcd cancelled the watch (compacted start revision, lost permission): the manager dropped it.
    // Without this listener the EventEmitter would throw the error and crash the process.
    watcher.on('error', () => {
      if (this.#watcher !== watcher) return;
      this.#watcher = undefined;
      this.#listeners.emit({ scope: 'any' });
      this.#cancelRecreate = this.#clock.setTimer(this.#recreate.next(), () => {
        this.#cancelRecreate = undefined;
        if (!this.#closed && this.#listeners.size > 0) this.#start();
      });
    });
    this.#watcher = watcher;
  }

  #stop(): void {
    this.#cancelRecreate?.();
    this.#cancelRecreate = undefined;
    const watcher = this.#watcher;
    if (!watcher) return;
    this.#watcher = undefined;
    // cancel() only rejects on a client-internal inconsistency; the watch is then dropped with the
    // client's channels at close(), so there is nothing more to do with the error than to let it go.
    const stopping: Promise<void> = watcher.cancel().then(
      () => undefined,
      () => undefined,
    );
    this.#stopping.add(stopping);
    void stopping.finally(() => this.#stopping.delete(stopping));
  }

}
