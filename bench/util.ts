/** Small shared helpers: bounded waiting, sleeping, logging progress to stderr. */

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `test` every `everyMs` until it returns true or `timeoutMs` passes (then throws with `what`). */
export async function waitUntil(what: string, test: () => boolean, timeoutMs: number, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`bench: timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

const started = Date.now();
export function progress(text: string): void {
  process.stderr.write(`[bench +${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${text}\n`);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A random integer in [0, max). */
export const jitter = (max: number): number => Math.floor(Math.random() * max);

/** How a bench child process reports to its parent: one JSON line per message. */
export type Say = (message: Record<string, unknown>) => void;
