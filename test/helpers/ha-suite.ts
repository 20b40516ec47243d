/**
 * The HA suite of one store (issue 22), shared by test/integration/ha-etcd.test.ts and ha-zookeeper.test.ts:
 * one fleet rides through a leader kill, a member kill and a 10 s quorum loss (ha-fleet.ts), then each
 * target gets its own test. Safety is asserted strictly (the history checker finds nothing, and nothing
 * is undecidable). Availability is asserted with margins wide enough for a loaded 2-core machine; the
 * issue's targets are printed next to the measured figures so a run shows how far from them it is.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { runHaFaults, type FaultFigures, type HaFault, type HaRunResult, type HaStore } from './ha-fleet.js';

/** Issue 22's targets. */
const TARGET = { leaderGapMs: 1500, quorumResumeMs: 2000 } as const;
/** The margins asserted: a gap of a few ticks, never a takeover after the TTL (5 s). */
const ASSERTED = { leaderGapMs: 4000, memberGapMs: 1500, quorumResumeMs: 4000 } as const;

export function describeHa(store: HaStore): void {
  describe(`${store} cluster: riding through the store's own failover (3 members, TTL 5 s, a task every 500 ms)`, () => {
    let result: HaRunResult | undefined;
    const figures = (fault: HaFault): FaultFigures => {
      const found = result?.figures.find((f) => f.fault === fault);
      if (!found) throw new Error(`${fault} was not run (the fleet failed earlier)`);
      return found;
    };

    beforeAll(async () => {
      result = await runHaFaults({ store, log: (line) => console.log(line) });
      for (const f of result.figures) console.log(`ha ${store} ${JSON.stringify(f)}`);
    }, 170_000);

    it('safety: no tick started twice, tokens never backwards, every tick run or recorded missed', () => {
      const check = (result as HaRunResult).check;
      const found = [...check.violations.map((v) => `${v.kind} ${v.key}: ${v.detail}`), ...check.undecidable];
      expect(found, `histories in ${result?.dir ?? '(removed)'}`).toEqual([]);
      expect(check.stats.runs).toBeGreaterThan(40);
    });

    it(`leader kill: no session lost, the owner keeps the task, a gap of a few ticks (target < ${TARGET.leaderGapMs} ms, no tick missed)`, () => {
      const f = figures('leader-kill');
      console.log(`ha ${store} leader-kill: gap ${f.gapMs} ms (target < ${TARGET.leaderGapMs}), missed ${f.missed} (target 0), sessions lost ${f.sessionsLost} (target 0)`);
      expect(f.sessionsLost).toBe(0);
      expect(f.ownerDrops).toBe(0);
      expect(f.gapMs).toBeLessThan(ASSERTED.leaderGapMs);
    });

    it('member kill: no visible effect', () => {
      const f = figures('member-kill');
      console.log(`ha ${store} member-kill (${f.detail}): gap ${f.gapMs} ms, missed ${f.missed}, sessions lost ${f.sessionsLost}`);
      expect(f.sessionsLost).toBe(0);
      expect(f.ownerDrops).toBe(0);
      expect(f.missed).toBe(0);
      expect(f.gapMs).toBeLessThan(ASSERTED.memberGapMs);
    });

    it(`quorum loss for 10 s: runs resume soon after the quorum returns (target < ${TARGET.quorumResumeMs} ms)`, () => {
      const f = figures('quorum-loss');
      console.log(`ha ${store} quorum-loss: resumed ${f.resumeMs} ms after the quorum served (target < ${TARGET.quorumResumeMs}), gap ${f.gapMs} ms, missed ${f.missed}, sessions lost ${f.sessionsLost}`);
      expect(f.resumeMs).toBeLessThan(ASSERTED.quorumResumeMs);
    });
  });
}
