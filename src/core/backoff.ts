/**
 * Exponential backoff with equal jitter (AWS architecture blog's "equal jitter": half the ceiling fixed,
 * half random): spreads the retries of many nodes that lost the store at the same instant, so they do not
 * reconnect in lockstep, while keeping every pause at least half the ceiling — "full jitter" can draw
 * pauses near 0 and let a failing store be asked again at once.
 */
export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly random?: () => number;
}

export class Backoff {
  readonly #options: BackoffOptions;
  #attempt = 0;

  constructor(options: BackoffOptions) {
    this.#options = options;
  }

  /** The delay before the next attempt. */
  next(): number {
    const ceiling = Math.min(this.#options.maxMs, this.#options.initialMs * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    return Math.round(ceiling / 2 + ((this.#options.random ?? Math.random)() * ceiling) / 2);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
