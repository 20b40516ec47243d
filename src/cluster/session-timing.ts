import { parseDuration, type Duration } from '../core/duration.js';
import { ConfigError } from '../core/errors.js';

/** Session timing as given by the user; every field optional. */
export interface SessionTimingOptions {
  /**
   * How long the store keeps a session alive after its last renewal, measured by the store. It bounds
   * failover after host loss or a partition (≈ TTL + one scan). Default 5s. Too short: a GC pause or a slow
   * store round trip costs ownership; too long: a lost host holds its tasks that long. Minimum 1s.
   */
  readonly ttl?: Duration;
  /**
   * How often the node renews its session (one request per node, whatever its number of tasks).
   * Default TTL / 3, so two renewals can fail before the session is in danger.
   */
  readonly renewEvery?: Duration;
  /**
   * How much earlier than the store the node gives up its leases when renewals fail (invariant 4). It
   * covers clock-rate differences and request latency. Default TTL / 5. Too small: a zombie could act
   * while the store already granted the key elsewhere (fencing still refuses its writes).
   */
  readonly safetyMargin?: Duration;
}

export interface SessionTiming {
  readonly ttlMs: number;
  readonly renewEveryMs: number;
  readonly safetyMarginMs: number;
}

export const MIN_TTL_MS = 1000;

/** Validates timing at construction and names both values when they conflict (client-go style). */
export function resolveSessionTiming(options: SessionTimingOptions = {}): SessionTiming {
  const ttlMs = parseDuration(options.ttl ?? 5000, 'ttl');
  if (ttlMs < MIN_TTL_MS) {
    throw new ConfigError(`ttl: must be at least ${MIN_TTL_MS}ms, got ${ttlMs}ms`);
  }
  const renewEveryMs = parseDuration(options.renewEvery ?? Math.floor(ttlMs / 3), 'renewEvery');
  const safetyMarginMs = parseDuration(options.safetyMargin ?? Math.floor(ttlMs / 5), 'safetyMargin');
  if (renewEveryMs <= 0) throw new ConfigError(`renewEvery: must be greater than 0, got ${renewEveryMs}ms`);
  if (safetyMarginMs <= 0) throw new ConfigError(`safetyMargin: must be greater than 0, got ${safetyMarginMs}ms`);
  if (renewEveryMs + safetyMarginMs >= ttlMs) {
    throw new ConfigError(
      `renewEvery (${renewEveryMs}ms) + safetyMargin (${safetyMarginMs}ms) must be less than ttl (${ttlMs}ms): ` +
        'a renewal must be possible before the node has to give up its leases',
    );
  }
  return { ttlMs, renewEveryMs, safetyMarginMs };
}
