/**
 * The public primitives of one cluster node — locks, semaphores, shared state — built once per node on
 * its session keeper and store. The node facade delegates to this object, so the facade stays a thin
 * list of methods. See docs/primitives.md. (Election events are about tasks: scheduler/elections.ts.)
 */
import { ConfigError } from '../core/errors.js';
import { Claims, type PrimitiveDeps } from './claims.js';
import { acquireLock, type LockHandle, type LockOptions } from './lock.js';
import { Semaphore, type SemaphoreOptions } from './semaphore.js';
import { SharedState } from './shared-state.js';

export class Primitives {
  readonly #deps: PrimitiveDeps;
  readonly #claims: Claims;

  constructor(deps: PrimitiveDeps) {
    this.#deps = deps;
    this.#claims = new Claims(deps);
  }

  lock(name: string, options?: LockOptions): Promise<LockHandle> {
    return acquireLock(this.#claims, name, options, this.#deps.keeper.timing.ttlMs);
  }

  async withLock<T>(name: string, optionsOrFn: LockOptions | ((lock: LockHandle) => Promise<T> | T), maybeFn?: (lock: LockHandle) => Promise<T> | T): Promise<T> {
    const fn = typeof optionsOrFn === 'function' ? optionsOrFn : maybeFn;
    const options = typeof optionsOrFn === 'function' ? undefined : optionsOrFn;
    if (typeof fn !== 'function') throw new ConfigError(`withLock "${name}": expected a function to run under the lock`);
    const lock = await this.lock(name, options);
    try {
      return await fn(lock);
    } finally {
      await lock.release();
    }
  }

  semaphore(name: string, options: SemaphoreOptions): Semaphore {
    this.#deps.assertRunning(`semaphore "${name}"`);
    return new Semaphore(this.#claims, name, options);
  }

  state<T>(name: string): SharedState<T> {
    this.#deps.assertRunning(`state "${name}"`);
    return new SharedState<T>(this.#deps, name);
  }
}
