/**
 * The short chaos round of CI: on every store, ≥ 50 faults against 3 real node processes (dist/) — in-process
 * nodes for the memory store, which cannot be shared between processes (memory-node.ts) — then the
 * history checker; plus the negative control (fencing off) that must show violations. Each store gets a
 * private server (its own ports and temp dir), so the shared test services are never touched.
 * Seeds are printed; reproduce one with `npm run chaos -- --store <kind> --faults 50 --seed <seed>`, or set
 * BATON_CHAOS_SEED for this file. BATON_CHAOS_FAULTS raises the fault count.
 */
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runChaos, type ChaosSummary } from './harness.js';
import type { ChaosStoreKind } from './servers.js';

const FAULTS = Number(process.env.BATON_CHAOS_FAULTS ?? 50);
const SEED = process.env.BATON_CHAOS_SEED === undefined ? undefined : Number(process.env.BATON_CHAOS_SEED);
const PER_STORE_TIMEOUT_MS = 150_000 + FAULTS * 1500;

function installed(kind: ChaosStoreKind): boolean {
  const which = (bin: string) => {
    try {
      execFileSync('which', [bin], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  switch (kind) {
    case 'memory':
    case 'sqlite':
      return true;
    case 'postgres':
      return existsSync('/usr/lib/postgresql');
    case 'mysql':
      return existsSync('/usr/sbin/mariadbd') && which('mariadb-install-db');
    case 'redis':
      return which('redis-server');
    case 'etcd':
      return which('etcd');
    case 'zookeeper':
      return existsSync('/usr/share/zookeeper/bin/zkServer.sh');
  }
}

function report(summary: ChaosSummary): string {
  const { store, seed, faults, faultsByKind, violations, runs, failoverP50Ms, failoverP99Ms, durationMs, unexpectedExits } = summary;
  return JSON.stringify({ store, seed, faults, faultsByKind, violations, runs, failoverP50Ms, failoverP99Ms, durationMs, unexpectedExits: unexpectedExits.length });
}

describe('chaos: short round on every store', () => {
  const stores: ChaosStoreKind[] = ['memory', 'sqlite', 'postgres', 'mysql', 'redis', 'etcd', 'zookeeper'];
  for (const kind of stores) {
    it.skipIf(!installed(kind))(`${kind}: ${FAULTS} faults, no violation`, async () => {
      const summary = await runChaos({ store: kind, faults: FAULTS, faultEveryMs: 600, ...(SEED !== undefined ? { seed: SEED } : {}) });
      console.log(`chaos ${report(summary)}`);
      const found = [...summary.check.violations.map((v) => `${v.kind} ${v.key}: ${v.detail}`), ...summary.check.undecidable];
      expect(found, `seed ${summary.seed}; histories in ${summary.dir ?? '(removed)'}`).toEqual([]);
      expect(summary.faults).toBeGreaterThanOrEqual(FAULTS);
      expect(summary.runs).toBeGreaterThan(0);
    }, PER_STORE_TIMEOUT_MS);
  }

  it.each(['sqlite', 'memory'] as const)('negative control on %s: with fencing off in the chaos nodes, pauses produce violations', async (store) => {
    const summary = await runChaos({ store, faults: 16, faultEveryMs: 800, faultKinds: ['pause'], unfenced: true, ...(SEED !== undefined ? { seed: SEED } : {}) });
    console.log(`chaos negative control ${report(summary)}`);
    const kinds = new Set(summary.check.violations.map((v) => v.kind));
    expect(summary.violations, `seed ${summary.seed}`).toBeGreaterThan(0);
    expect([...kinds].some((k) => k === 'overlap' || k === 'stale-write')).toBe(true);
  }, 120_000);
});
