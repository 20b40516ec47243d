import type { Change } from './contract.js';

/**
 * The watchers of one store handle. Delivery is isolated: a listener that throws loses only its own hint
 * (hints are advisory and the state is re-read anyway); the other listeners, and the connection or poll
 * loop that delivers them, go on.
 */
export class ChangeListeners {
  readonly #listeners = new Set<(change: Change) => void>();

  get size(): number {
    return this.#listeners.size;
  }

  add(listener: (change: Change) => void): void {
    this.#listeners.add(listener);
  }

  /**
   * Adds `listener` and returns its unsubscribe function, which calls `onLastGone` when it removes the
   * last listener (the store then stops the loop or watch that feeds them).
   */
  subscribe(listener: (change: Change) => void, onLastGone: () => void): () => void {
    this.#listeners.add(listener);
    return () => {
      if (this.#listeners.delete(listener) && this.#listeners.size === 0) onLastGone();
    };
  }

  delete(listener: (change: Change) => void): void {
    this.#listeners.delete(listener);
  }

  clear(): void {
    this.#listeners.clear();
  }

  emit(change: Change): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(change);
      } catch {
        // Isolated on purpose, see above.
      }
    }
  }
}
