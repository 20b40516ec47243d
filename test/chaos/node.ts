/**
 * One chaos node: a real process running the BUILT library (dist/), like a user's service would, with a
 * workload and a recorder. Started by the harness (`node --import tsx test/chaos/node.ts --config JSON`).
 *
 * Workload:
 * - `tasks` singleton tasks every `everyMs`: each run reads the fenced checkpoint, works a little, writes a
 *   ledger record guarded by the task's owner key and token, and commits checkpoint + 1;
 * - `locks` locks taken and released in a loop through a second session (SessionKeeper + Lease from dist):
 *   every hold writes guarded records under the lock.
 * Every store call goes through a recording wrapper that writes invoke/complete records to the history
 * file (see history.ts). stdin takes commands from the harness: `{"cmd":"skew","offsetMs":N}`.
 *
 * Handlers and lock holders do not honour their abort signals (on purpose), so zombies do send writes.
 * `unfenced: true` is the NEGATIVE CONTROL, a switch of this test node only: the workload's own writes are
 * sent without a guard and handlers ignore their abort signal, so the checker must find violations.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { hostname } from 'node:os';
import { systemClock, type Clock } from '../../dist/core/clock.js';
import { openStore } from '../../dist/stores/open-store.js';
import type { Store } from '../../dist/stores/contract.js';
import { monoNow, type HistoryEvent } from './history.js';
import { errorText, startWorkload, type ChaosNodeConfig, type Workload } from './workload.js';

export type { ChaosNodeConfig } from './workload.js';

const config = JSON.parse(process.argv[process.argv.indexOf('--config') + 1] ?? '{}') as ChaosNodeConfig;
const node = config.id;
const fd = openSync(config.history, 'a');
let closed = false;

/** One write(2) per line: a SIGKILL can cut the history short but never in the middle of a line. */
function record(event: HistoryEvent): void {
  if (closed) return;
  writeSync(fd, `${JSON.stringify(event)}\n`);
}
/** Progress for the harness (owner changes), one JSON line on stdout. */
function tell(message: object): void {
  process.stdout.write(`${JSON.stringify({ node, m: monoNow(), ...message })}\n`);
}

// --- clock skew: an offset on the wall clock only; monotonic time and timers are the system's.
let offsetMs = config.skewMs;
const clock: Clock = {
  now: () => Date.now() + offsetMs,
  monotonic: () => systemClock.monotonic(),
  setTimer: (ms, fn) => systemClock.setTimer(ms, fn),
};

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  // A service retries its start while the store is unreachable (a restart or a cut may be in progress).
  let inner: Store | undefined;
  for (let attempt = 1; !inner; attempt++) {
    try {
      inner = await openStore(config.store, { cluster: config.cluster, clock });
    } catch (error) {
      if (attempt >= 30) throw error;
      await pause(500);
    }
  }

  // --- commands from the harness.
  createInterface({ input: process.stdin }).on('line', (line) => {
    try {
      const cmd = JSON.parse(line) as { cmd: string; offsetMs?: number };
      if (cmd.cmd === 'skew' && typeof cmd.offsetMs === 'number') {
        offsetMs = cmd.offsetMs;
        record({ e: 'skew', node, offsetMs, m: monoNow() });
      }
    } catch {
      // ignore malformed commands
    }
  });

  let workload: Workload | undefined;
  const shutdown = () => {
    void (async () => {
      await workload?.stop();
      closed = true;
      closeSync(fd);
      process.exit(0);
    })();
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);

  // start() leaves nothing running when it fails; a cluster starts once, so the harness restarts the node.
  workload = await startWorkload({ config, store: inner, clock, pid: process.pid, record, tell });
  tell({ type: 'ready', pid: process.pid, host: hostname() });
}

process.on('unhandledRejection', (reason) => {
  process.stderr.write(`${node}: unhandled rejection: ${errorText(reason)}\n`);
});

main().catch((error: unknown) => {
  process.stderr.write(`${node}: failed to start: ${errorText(error)}\n`);
  process.exit(3);
});
