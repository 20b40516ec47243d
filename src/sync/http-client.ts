/**
 * Fetches one page of JSON from the source API: global `fetch`, a timeout per attempt (headers and body),
 * retries with exponential backoff and equal jitter, `Retry-After` honoured on 429 and 503 (seconds or an
 * HTTP date, capped), and a minimum interval between requests.
 *
 * Retried: network errors, timeouts, 408, 425, 429 and every 5xx, malformed JSON (a truncated body or a
 * proxy's HTML error page is usually transient), and an answer the caller's `check` calls unusable (a
 * page that does not advance the cursor). Not retried: other 4xx (a wrong URL or credentials will not
 * heal) and JSON of the wrong shape. Either way the caller gets a {@link SyncSourceError}.
 *
 * Guarantees: every wait (a request, a backoff, the rate limit) ends at once when `signal` aborts, with
 * the signal's reason; timers come from the injected clock; messages name the URL without its query
 * string or credentials (either may hold an API key).
 */
import { Backoff } from '../core/backoff.js';
import { sleep, type Clock } from '../core/clock.js';
import { SyncSourceError } from './errors.js';

export interface HttpClientSettings {
  readonly clock: Clock;
  /** One attempt (headers and body), in ms. */
  readonly timeoutMs: number;
  /** Attempts per page, the first included. */
  readonly attempts: number;
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
  /** The longest `Retry-After` obeyed; longer ones are cut to this. */
  readonly maxRetryAfterMs: number;
  /** Minimum time between the starts of two requests (also across runs), in ms. */
  readonly minIntervalMs: number;
  /** Names the sync in messages. */
  readonly label: string;
  readonly random?: () => number;
}

/** Why an attempt failed, told to `onRetry` before the wait. */
export interface RetryInfo {
  readonly attempt: number;
  readonly reason: string;
  readonly status?: number;
  readonly delayMs: number;
}

export interface FetchPageRequest {
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  readonly signal: AbortSignal;
  /** Returns a reason to retry (the answer is unusable, e.g. a page that makes no progress), or undefined. */
  readonly check?: (body: unknown) => string | undefined;
  readonly onRetry?: (info: RetryInfo) => void;
}

export interface FetchedPage {
  readonly body: unknown;
  readonly status: number;
  /** Attempts used, the successful one included. */
  readonly attempts: number;
}

interface Failure {
  readonly reason: string;
  readonly retryable: boolean;
  readonly status?: number;
  readonly retryAfterMs?: number;
  readonly cause?: unknown;
}

/** The HTTP side of one sync: keeps the rate limit's state across pages and runs. */
export class HttpClient {
  readonly #settings: HttpClientSettings;
  /** Monotonic time before which the next request may not start. */
  #nextStart = Number.NEGATIVE_INFINITY;
  #requests = 0;

  constructor(settings: HttpClientSettings) {
    this.#settings = settings;
  }

  /** Requests sent so far (attempts, retries included). */
  get requests(): number {
    return this.#requests;
  }

  /**
   * Fetches and parses one page, retrying as described in the module comment.
   * @throws SyncSourceError when no attempt gave a usable answer; the signal's reason when it aborts.
   */
  async fetchJson(request: FetchPageRequest): Promise<FetchedPage> {
    const { attempts, clock, maxRetryAfterMs } = this.#settings;
    const backoff = new Backoff({ ...this.#settings.backoff, ...(this.#settings.random ? { random: this.#settings.random } : {}) });
    const shown = `${request.url.origin}${request.url.pathname}`;
    for (let attempt = 1; ; attempt++) {
      await this.#pace(request.signal);
      const outcome = await this.#attempt(request);
      if ('body' in outcome) return { ...outcome, attempts: attempt };
      const failure = outcome;
      if (!failure.retryable || attempt >= attempts) {
        const tries = failure.retryable ? ` after ${attempt} attempt${attempt === 1 ? '' : 's'}` : '';
        throw new SyncSourceError(`${this.#settings.label}: GET ${shown}: ${failure.reason}${tries}`, {
          ...(failure.status !== undefined ? { status: failure.status } : {}),
          attempts: attempt,
          cause: failure.cause,
        });
      }
      const delayMs = failure.retryAfterMs !== undefined ? Math.min(failure.retryAfterMs, maxRetryAfterMs) : backoff.next();
      request.onRetry?.({ attempt, reason: failure.reason, ...(failure.status !== undefined ? { status: failure.status } : {}), delayMs });
      await sleep(clock, delayMs, request.signal);
    }
  }

  /** One request: a parsed body, or why it failed. Rethrows only the caller's abort. */
  async #attempt(request: FetchPageRequest): Promise<{ body: unknown; status: number } | Failure> {
    const { clock, timeoutMs } = this.#settings;
    const timeout = new AbortController();
    const cancel = clock.setTimer(timeoutMs, () => timeout.abort(new Error(`no answer within ${timeoutMs} ms`)));
    this.#requests++;
    try {
      const response = await fetch(request.url, {
        headers: { accept: 'application/json', ...request.headers },
        signal: AbortSignal.any([request.signal, timeout.signal]),
      });
      // The body is read under the same timeout: a server that sends headers and then stalls is a timeout too.
      const text = await response.text();
      if (!response.ok) {
        const status = response.status;
        const retryable = status === 408 || status === 425 || status === 429 || status >= 500;
        const retryAfterMs = status === 429 || status === 503 ? parseRetryAfter(response.headers.get('retry-after'), clock.now()) : undefined;
        return { reason: `HTTP ${status}${snippet(text)}`, retryable, status, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (error) {
        return { reason: `malformed JSON (${(error as Error).message})`, retryable: true, status: response.status, cause: error };
      }
      const unusable = request.check?.(body);
      if (unusable !== undefined) return { reason: unusable, retryable: true, status: response.status };
      return { body, status: response.status };
    } catch (error) {
      if (request.signal.aborted) throw request.signal.reason;
      if (timeout.signal.aborted) return { reason: `no answer within ${timeoutMs} ms`, retryable: true, cause: error };
      if (error instanceof ShapeError) return { reason: error.message, retryable: false, cause: error };
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      return { reason: `network error: ${cause?.code ?? cause?.message ?? (error as Error).message}`, retryable: true, cause: error };
    } finally {
      cancel();
    }
  }

  /** Waits until the rate limit lets the next request start, then books its slot. */
  async #pace(signal: AbortSignal): Promise<void> {
    const { clock, minIntervalMs } = this.#settings;
    if (minIntervalMs <= 0) return;
    const wait = this.#nextStart - clock.monotonic();
    if (wait > 0) await sleep(clock, wait, signal);
    this.#nextStart = clock.monotonic() + minIntervalMs;
  }
}

/** Thrown by a `check` to fail at once, without retrying (JSON of the wrong shape). */
export class ShapeError extends Error {}

/**
 * `Retry-After` in ms: delay-seconds or an HTTP date (RFC 9110 §10.2.3); undefined when absent or
 * unreadable, 0 for a date in the past.
 */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d{1,10}$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

function snippet(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim().slice(0, 120);
  return line === '' ? '' : `: ${line}`;
}
