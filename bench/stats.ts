/** Percentiles and small summaries for the bench (nearest-rank percentiles on sorted samples). */

export interface Summary {
  readonly n: number;
  readonly p50: number | null;
  readonly p99: number | null;
  readonly min: number | null;
  readonly max: number | null;
  readonly mean: number | null;
}

/** Nearest-rank percentile: the smallest sample with at least p% of the samples at or below it. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? null;
}

export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) return { n: 0, p50: null, p99: null, min: null, max: null, mean: null };
  return {
    n: values.length,
    p50: percentile(values, 50),
    p99: percentile(values, 99),
    min: Math.min(...values),
    max: Math.max(...values),
    mean: round(values.reduce((a, b) => a + b, 0) / values.length, 1),
  };
}

export function round(value: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** "a / b" as a ratio with 2 decimals, or null when either side is missing or b is 0. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return null;
  return round(a / b, 2);
}
