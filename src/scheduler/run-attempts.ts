/**
 * One run of a tick as attempts: the handler is called, and when it fails (or times out) it is called
 * again on the same tick after a backoff, up to `retries` times. The tick's claim is made once, before
 * the first attempt, so retries never make a tick start twice in the sense of invariant 3.
 *
 * Guarantees: each attempt has its own signal, aborted by the run's stop signal (lease lost, shutdown)
 * and by `timeout` (reason: a {@link TimeoutError}); no retry starts after the stop signal aborted.
 * Non-guarantees: an attempt that ignores its aborted signal keeps running — the next attempt starts only
 * after it returned, so attempts of one run never overlap.
 */
import { sleep, type Clock } from '../core/clock.js';
import { TimeoutError, toError } from '../core/errors.js';
import type { RunOutcome } from './events.js';
import type { RunPolicy } from './task-options.js';

export interface AttemptsResult {
  readonly outcome: RunOutcome;
  readonly attempts: number;
  readonly error?: Error;
}

/** The pause before attempt `attempt + 1` after attempt `attempt` failed: doubling from initial, capped at max. */
export function retryDelay(backoff: RunPolicy['retryBackoff'], attempt: number): number {
  return Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt - 1, 30));
}

export async function runAttempts(options: {
  readonly clock: Clock;
  readonly policy: Pick<RunPolicy, 'retries' | 'retryBackoff' | 'timeoutMs'>;
  readonly task: string;
  /** Aborts on lease loss and shutdown: the current attempt's signal aborts and no retry follows. */
  readonly stop: AbortSignal;
  readonly invoke: (attempt: number, signal: AbortSignal) => Promise<void> | void;
  /** Called before waiting for attempt `next`; throwing stops the retries (the run ends as aborted). */
  readonly beforeRetry: (next: number, error: Error, delayMs: number) => Promise<void>;
}): Promise<AttemptsResult> {
  const { clock, policy, stop } = options;
  for (let attempt = 1; ; attempt++) {
    const controller = new AbortController();
    const abort = () => controller.abort(stop.reason);
    // `stop` may have aborted already: its abort event would never come then.
    if (stop.aborted) abort();
    else stop.addEventListener('abort', abort, { once: true });
    let timedOut = false;
    const cancelTimeout =
      policy.timeoutMs === undefined
        ? () => undefined
        : clock.setTimer(policy.timeoutMs, () => {
            timedOut = true;
            controller.abort(new TimeoutError(`task "${options.task}": attempt ${attempt} exceeded its timeout of ${policy.timeoutMs}ms`));
          });
    let error: Error;
    let outcome: RunOutcome;
    try {
      await options.invoke(attempt, controller.signal);
      return { outcome: 'succeeded', attempts: attempt };
    } catch (thrown) {
      error = toError(thrown);
      outcome = stop.aborted ? 'aborted' : timedOut ? 'timed-out' : 'failed';
    } finally {
      cancelTimeout();
      stop.removeEventListener('abort', abort);
    }
    if (outcome === 'aborted' || attempt > policy.retries) return { outcome, attempts: attempt, error };
    const delayMs = retryDelay(policy.retryBackoff, attempt);
    try {
      await options.beforeRetry(attempt + 1, error, delayMs);
      await sleep(clock, delayMs, stop);
    } catch {
      return { outcome: 'aborted', attempts: attempt, error };
    }
  }
}
