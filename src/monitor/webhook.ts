/**
 * Alert delivery to a webhook: each raised or resolved alert is POSTed as JSON to one http(s) URL.
 *
 * Guarantees: deliveries go out one at a time, in the order `send()` was called; each is retried on
 * network errors, timeouts, 5xx and 429 (waiting what `Retry-After` asks, else a jittered backoff), up
 * to `attempts` times, then given up and logged. Every request of one delivery carries the same
 * `X-Baton-Delivery: <alert.id>:<status>` header, so a receiver can drop duplicates; with a `secret`,
 * each request is signed (`X-Baton-Signature`, over `X-Baton-Timestamp` and the body). The secret and
 * any credentials in the URL never reach the log.
 *
 * Non-guarantees: at-least-once only while the process lives — the queue is in memory, so a crash or
 * `close()` drops what is pending (logged as dropped). A delivery that timed out may still have
 * reached the receiver; the retry then duplicates it (hence the idempotency key). A slow or failing
 * receiver delays every delivery behind the current one (order is kept over throughput). Redirects
 * are not followed: a 3xx is a rejection.
 */
import { createHmac } from 'node:crypto';
import { Backoff } from '../core/backoff.js';
import { sleep, type Clock } from '../core/clock.js';
import { describe as describeValue, parseDuration, type Duration } from '../core/duration.js';
import { ClosedError, ConfigError, DurationError, toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Alert } from './monitor-events.js';

export interface WebhookOptions {
  /** http(s) URL the alerts are POSTed to. Credentials in it (`user:pass@`) are sent as Basic auth. */
  readonly url: string;
  /**
   * HMAC-SHA256 key: each request carries `X-Baton-Signature: sha256=<hex of HMAC(secret, `${timestamp}.${body}`)>`
   * and `X-Baton-Timestamp: <ms>` (wall clock of the sender, so receivers can reject stale replays).
   * Default: none (requests are not signed).
   */
  readonly secret?: string;
  /**
   * Per-request timeout, measured on the injected clock from the request's start to the end of the
   * response headers. Default 5s. Too short: a slow receiver gets duplicates (a timed-out request may
   * still have landed); too long: one hung receiver holds every delivery behind it that long per attempt.
   */
  readonly timeout?: Duration;
  /**
   * Attempts per delivery before it is given up (and logged). Default 8, backoff 0.5 s doubling to 30 s
   * with jitter (about 1.5 min in all). 1 means no retry.
   */
  readonly attempts?: number;
}

export interface AlertDelivery {
  readonly status: 'firing' | 'resolved';
  readonly alert: Alert;
  readonly cluster: string;
}

export interface WebhookDeps {
  readonly clock: Clock;
  readonly log: Logger;
  /** Default: the global `fetch`. */
  readonly fetch?: typeof fetch;
}

const DEFAULT_TIMEOUT_MS = 5000;
const DEFAULT_ATTEMPTS = 8;
const MAX_ATTEMPTS = 100;
const BACKOFF = { initialMs: 500, maxMs: 30_000 } as const;
/** A `Retry-After` longer than this is cut to it: one receiver must not hold every alert for hours. */
const MAX_RETRY_AFTER_MS = 10 * 60_000;
const OPTION_NAMES = ['url', 'secret', 'timeout', 'attempts'] as const satisfies readonly (keyof WebhookOptions)[];

/** Validated options, as the sender uses them. */
interface ResolvedWebhook {
  /** The URL without credentials (fetch refuses URLs carrying them). */
  readonly target: string;
  /** For the log and error messages: credentials and query redacted. */
  readonly shown: string;
  /** `Basic …` when the URL carried credentials. */
  readonly authorization: string | undefined;
  readonly secret: string | undefined;
  readonly timeoutMs: number;
  readonly attempts: number;
}

/**
 * Validates webhook options (from a config file or code).
 * @param where names the setting in error messages, e.g. `monitor: webhook`.
 * @throws ConfigError naming the field (`${where}: url must be …`); never shows the secret or URL credentials.
 */
export function parseWebhookOptions(value: unknown, where: string): WebhookOptions {
  const resolved = resolveWebhookOptions(value, where);
  const v = value as WebhookOptions;
  return {
    url: v.url,
    ...(resolved.secret !== undefined ? { secret: resolved.secret } : {}),
    ...(v.timeout !== undefined ? { timeout: v.timeout } : {}),
    ...(v.attempts !== undefined ? { attempts: v.attempts } : {}),
  };
}

function resolveWebhookOptions(value: unknown, where: string): ResolvedWebhook {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`${where}: expected an object { url, secret?, timeout?, attempts? }, got ${describeValue(value)}`);
  }
  const unknown = Object.keys(value).filter((k) => !(OPTION_NAMES as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw new ConfigError(`${where}: unknown option ${unknown.map((k) => JSON.stringify(k)).join(', ')} (expected ${OPTION_NAMES.join(', ')})`);
  }
  const v = value as Record<string, unknown>;

  if (typeof v.url !== 'string' || v.url.trim() === '') {
    throw new ConfigError(`${where}: url must be an http or https URL, got ${v.url === undefined ? 'nothing' : typeof v.url}`);
  }
  let url: URL;
  try {
    url = new URL(v.url);
  } catch {
    throw new ConfigError(`${where}: url must be an http or https URL, got ${JSON.stringify(redactUrlText(v.url))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${where}: url must be an http or https URL, got ${JSON.stringify(redactUrl(url))} (scheme ${url.protocol.slice(0, -1)})`);
  }
  if (url.hash !== '') {
    throw new ConfigError(`${where}: url must not have a #fragment, got ${JSON.stringify(redactUrl(url))}`);
  }
  let authorization: string | undefined;
  if (url.username !== '' || url.password !== '') {
    const user = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  }
  const target = new URL(url.href);
  target.username = '';
  target.password = '';

  let secret: string | undefined;
  if (v.secret !== undefined) {
    // Never echo the value: it is the secret.
    if (typeof v.secret !== 'string' || v.secret === '') {
      throw new ConfigError(`${where}: secret must be a non-empty string, got ${typeof v.secret === 'string' ? 'an empty string' : typeof v.secret}`);
    }
    secret = v.secret;
  }

  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (v.timeout !== undefined) {
    try {
      timeoutMs = parseDuration(v.timeout, `${where}: timeout`);
    } catch (error) {
      if (error instanceof DurationError) throw new ConfigError(error.message, { cause: error });
      throw error;
    }
    if (timeoutMs < 1) throw new ConfigError(`${where}: timeout must be more than 0, got ${describeValue(v.timeout)}`);
  }

  const attempts = v.attempts ?? DEFAULT_ATTEMPTS;
  if (typeof attempts !== 'number' || !Number.isInteger(attempts) || attempts < 1 || attempts > MAX_ATTEMPTS) {
    throw new ConfigError(`${where}: attempts must be a positive integer (1 to ${MAX_ATTEMPTS}), got ${describeValue(v.attempts)}`);
  }

  return { target: target.href, shown: redactUrl(url), authorization, secret, timeoutMs, attempts };
}

/** The URL for people: credentials replaced by `***`, query values hidden (tokens often live there). */
export function redactUrl(url: URL): string {
  const userinfo = url.username !== '' || url.password !== '' ? '***@' : '';
  const query = url.search !== '' ? '?***' : '';
  return `${url.protocol}//${userinfo}${url.host}${url.pathname}${query}`;
}

/** For text that does not even parse as a URL: hide anything between `//` and `@`, and the query. */
function redactUrlText(text: string): string {
  return text.replace(/\/\/[^/@]*@/, '//***@').replace(/\?.*$/s, '?***');
}

type Outcome =
  | { readonly kind: 'delivered'; readonly status: number }
  | { readonly kind: 'retry'; readonly reason: string; readonly retryAfterMs: number | undefined }
  | { readonly kind: 'rejected'; readonly reason: string }
  | { readonly kind: 'aborted' };

type State = 'open' | 'closed';

/**
 * Sends alert deliveries to one webhook, one at a time, in order. `send()` never throws and never
 * waits; failures end in the log (`webhook: delivery given up`), not in the caller.
 */
export class WebhookSender {
  readonly #config: ResolvedWebhook;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #fetch: typeof fetch;
  /** Aborts the in-flight request and any retry wait: fired by close(). */
  readonly #stop = new AbortController();
  readonly #queue: AlertDelivery[] = [];
  #state: State = 'open';
  /** The drain loop while it runs; null when the queue is empty and nothing is in flight. */
  #draining: Promise<void> | null = null;
  #closing: Promise<void> | null = null;

  /** @throws ConfigError for invalid options (see {@link parseWebhookOptions}). */
  constructor(options: WebhookOptions, deps: WebhookDeps) {
    this.#config = resolveWebhookOptions(options, 'webhook');
    this.#clock = deps.clock;
    this.#fetch = deps.fetch ?? globalThis.fetch;
    this.#log = deps.log.child({ component: 'webhook', url: this.#config.shown });
  }

  /** Queues a delivery; never throws; deliveries go out in order (one at a time), each retried as the module doc says. */
  send(delivery: AlertDelivery): void {
    if (this.#state === 'closed') {
      this.#log.warn({ delivery: deliveryKey(delivery) }, 'webhook: delivery dropped: sender closed');
      return;
    }
    this.#queue.push(delivery);
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = null;
    });
  }

  /** Resolves when the queue is empty and nothing is in flight (tests). */
  async idle(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  /**
   * Stops: aborts the in-flight request and pending retries, logs the deliveries not yet made as
   * dropped, and resolves when the drain loop has ended. Safe to call twice.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#state = 'closed';
      this.#stop.abort(new ClosedError('webhook: closed'));
      // The in-flight delivery (if any) is logged by the drain loop when its abort lands.
      for (const delivery of this.#queue.splice(0)) {
        this.#log.warn({ delivery: deliveryKey(delivery) }, 'webhook: delivery dropped: sender closed');
      }
      await this.idle();
    })();
    return this.#closing;
  }

  async #drain(): Promise<void> {
    for (let delivery = this.#queue.shift(); delivery; delivery = this.#queue.shift()) {
      try {
        await this.#deliver(delivery);
      } catch (error) {
        // #deliver handles what it expects; anything else must not stop the queue nor reject into nobody.
        this.#log.error({ delivery: deliveryKey(delivery), err: toError(error) }, 'webhook: delivery failed unexpectedly');
      }
    }
  }

  async #deliver(delivery: AlertDelivery): Promise<void> {
    const key = deliveryKey(delivery);
    const { attempts } = this.#config;
    const backoff = new Backoff(BACKOFF);
    for (let attempt = 1; ; attempt++) {
      let outcome = this.#stop.signal.aborted ? ({ kind: 'aborted' } as const) : await this.#attempt(delivery, key);
      // close() during the response (reading an error body) surfaces as a failure: it is a drop, not a retry.
      if (this.#stop.signal.aborted && outcome.kind !== 'delivered') outcome = { kind: 'aborted' };
      switch (outcome.kind) {
        case 'delivered':
          this.#log.debug({ delivery: key, attempt, status: outcome.status }, 'webhook: delivered');
          return;
        case 'rejected':
          this.#log.error({ delivery: key, attempt, reason: outcome.reason }, 'webhook: delivery rejected by the receiver, not retried');
          return;
        case 'aborted':
          this.#log.warn({ delivery: key, attempt }, 'webhook: delivery dropped: sender closed');
          return;
        case 'retry': {
          if (attempt >= attempts) {
            this.#log.error({ delivery: key, attempts, reason: outcome.reason }, 'webhook: delivery given up');
            return;
          }
          // A Retry-After replaces the backoff for this wait; the backoff still advances, so a receiver
          // that stops sending it does not restart us at 0.5 s.
          const backoffMs = backoff.next();
          const delayMs = outcome.retryAfterMs ?? backoffMs;
          this.#log.warn({ delivery: key, attempt, attempts, reason: outcome.reason, retryInMs: delayMs }, 'webhook: delivery failed, will retry');
          try {
            await sleep(this.#clock, delayMs, this.#stop.signal);
          } catch {
            this.#log.warn({ delivery: key, attempt }, 'webhook: delivery dropped: sender closed');
            return;
          }
        }
      }
    }
  }

  /** One request. Never throws: every result is an {@link Outcome}. */
  async #attempt(delivery: AlertDelivery, key: string): Promise<Outcome> {
    const timestamp = this.#clock.now();
    const body = JSON.stringify({ status: delivery.status, alert: delivery.alert, cluster: delivery.cluster, sentAt: timestamp });
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      'User-Agent': 'baton-webhook',
      'X-Baton-Delivery': key,
      'X-Baton-Timestamp': String(timestamp),
    };
    if (this.#config.secret !== undefined) {
      const signature = createHmac('sha256', this.#config.secret).update(`${timestamp}.${body}`).digest('hex');
      headers['X-Baton-Signature'] = `sha256=${signature}`;
    }
    if (this.#config.authorization !== undefined) headers.Authorization = this.#config.authorization;

    // One controller per request, aborted by close() or by the timeout (on the injected clock).
    const request = new AbortController();
    let timedOut = false;
    const onStop = () => request.abort(this.#stop.signal.reason);
    this.#stop.signal.addEventListener('abort', onStop, { once: true });
    const cancelTimer = this.#clock.setTimer(this.#config.timeoutMs, () => {
      timedOut = true;
      request.abort(new Error(`webhook: no response within ${this.#config.timeoutMs}ms`));
    });
    try {
      const response = await this.#fetch(this.#config.target, { method: 'POST', headers, body, signal: request.signal, redirect: 'manual' });
      const { status } = response;
      if (status >= 200 && status < 300) {
        await response.body?.cancel().catch(() => undefined);
        return { kind: 'delivered', status };
      }
      const detail = await snippet(response);
      const reason = `HTTP ${status}${detail ? `: ${detail}` : ''}`;
      if (status === 429 || status >= 500) {
        return { kind: 'retry', reason, retryAfterMs: parseRetryAfter(response.headers.get('retry-after'), this.#clock.now()) };
      }
      return { kind: 'rejected', reason: status >= 300 && status < 400 ? `${reason} (redirects are not followed)` : reason };
    } catch (error) {
      if (this.#stop.signal.aborted) return { kind: 'aborted' };
      if (timedOut) return { kind: 'retry', reason: `timeout after ${this.#config.timeoutMs}ms`, retryAfterMs: undefined };
      return { kind: 'retry', reason: networkReason(error), retryAfterMs: undefined };
    } finally {
      cancelTimer();
      this.#stop.signal.removeEventListener('abort', onStop);
    }
  }
}

/** The idempotency key: the same for every attempt of one delivery. */
function deliveryKey(delivery: AlertDelivery): string {
  return `${delivery.alert.id}:${delivery.status}`;
}

/**
 * `Retry-After` as milliseconds to wait: delta-seconds, or an HTTP date (against our wall clock),
 * capped at {@link MAX_RETRY_AFTER_MS}. Undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    ms = at - nowMs;
  }
  return Math.min(Math.max(0, ms), MAX_RETRY_AFTER_MS);
}

/** The start of an error response's body, for the log (bounded; the body is never read further). */
async function snippet(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return '';
  try {
    const { value } = await reader.read();
    return value ? Buffer.from(value).toString('utf8', 0, Math.min(value.length, 200)).replace(/\s+/g, ' ').trim() : '';
  } catch {
    return '';
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/** fetch wraps socket errors in `TypeError: fetch failed`; the cause says what happened (ECONNREFUSED…). */
function networkReason(error: unknown): string {
  const err = toError(error);
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return `${err.message}: ${typeof code === 'string' ? `${code} ` : ''}${cause.message}`;
  }
  return err.message;
}
