/**
 * `npm run chaos -- --store KIND|URL --faults N [--seed S] [--json] [--unfenced] [--nodes N] [--ttl MS]
 *   [--every MS] [--fault-every MS] [--only kill,pause,…] [--keep]`
 *
 * KIND (sqlite, postgres, mysql, redis, etcd, zookeeper) starts a private server of that kind (restart
 * faults included); a URL on 127.0.0.1 uses that server as it is (never restarted). Prints progress and a
 * summary, or with --json one line: {"store","faults","violations","runs","failoverP50Ms","failoverP99Ms"}.
 * Exit code 1 when the checker found a violation or could not decide.
 */
import { ALL_FAULTS, runChaos, type FaultKind } from './harness.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const flag = (name: string) => process.argv.includes(`--${name}`);
const num = (name: string): number | undefined => {
  const raw = arg(name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name}: expected a number, got ${JSON.stringify(raw)}`);
  return value;
};

async function main(): Promise<number> {
  const store = arg('store');
  if (!store) {
    process.stderr.write('usage: npm run chaos -- --store sqlite|postgres|mysql|redis|etcd|zookeeper|URL --faults N [--json] [--seed S]\n');
    return 2;
  }
  const json = flag('json');
  const only = arg('only')?.split(',') as FaultKind[] | undefined;
  if (only?.some((k) => !ALL_FAULTS.includes(k))) throw new Error(`--only: known faults are ${ALL_FAULTS.join(', ')}`);
  const seed = num('seed');
  const nodes = num('nodes');
  const ttlMs = num('ttl');
  const everyMs = num('every');
  const faultEveryMs = num('fault-every');
  // Ctrl-C ends the fault phase; the harness still stops every node and server it started.
  const interrupt = new AbortController();
  process.once('SIGINT', () => interrupt.abort());
  process.once('SIGTERM', () => interrupt.abort());
  const summary = await runChaos({
    store,
    signal: interrupt.signal,
    faults: num('faults') ?? 50,
    ...(seed !== undefined ? { seed } : {}),
    ...(nodes !== undefined ? { nodes } : {}),
    ...(ttlMs !== undefined ? { ttlMs } : {}),
    ...(everyMs !== undefined ? { everyMs } : {}),
    ...(faultEveryMs !== undefined ? { faultEveryMs } : {}),
    ...(only ? { faultKinds: only } : {}),
    unfenced: flag('unfenced'),
    keep: flag('keep'),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  const { store: kind, faults, violations, runs, failoverP50Ms, failoverP99Ms } = summary;
  if (json) {
    process.stdout.write(`${JSON.stringify({ store: kind, faults, violations, runs, failoverP50Ms, failoverP99Ms })}\n`);
  } else {
    const c = summary.check;
    process.stdout.write(
      `\nchaos summary — store ${kind}, seed ${summary.seed} (reproduce: --seed ${summary.seed})\n` +
        `  faults:     ${faults} (${Object.entries(summary.faultsByKind).map(([k, n]) => `${k} ${n}`).join(', ')})\n` +
        `  runs:       ${runs}, acquisitions ${c.stats.acquisitions}, accepted writes ${c.stats.acceptedWrites}, ` +
        `fenced refusals ${c.stats.fencedRefusals}, ticks recorded missed ${c.stats.missedTicks}\n` +
        `  failover:   p50 ${failoverP50Ms ?? '-'} ms, p99 ${failoverP99Ms ?? '-'} ms (${summary.failoverSamples} samples)\n` +
        `  violations: ${c.violations.length}, undecidable: ${c.undecidable.length}\n` +
        c.violations.slice(0, 20).map((v) => `    ${v.kind} ${v.key}: ${v.detail}\n`).join('') +
        c.undecidable.slice(0, 10).map((u) => `    undecidable: ${u}\n`).join('') +
        `  exits:      ${summary.unexpectedExits.length} unexpected${summary.unexpectedExits.length ? ` (${summary.unexpectedExits.slice(0, 5).join("; ")})` : ""}\n` +
        `  duration:   ${(summary.durationMs / 1000).toFixed(1)} s${summary.dir ? `, histories in ${summary.dir}` : ''}\n`,
    );
  }
  return violations === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`chaos: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(2);
  },
);
