/**
 * bench/report.ts on the committed results: the report is written into an --out directory that does not
 * exist yet (an hour of measurements must not end in ENOENT), and its claims about store load say what was
 * counted — our calls, and the server's own work where it was measured.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeReport, type Results } from '../../bench/report.js';

const committed = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../bench/results.json'), 'utf8')) as Results;
const dir = mkdtempSync(join(tmpdir(), 'baton-bench-report-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bench report', () => {
  it('creates a missing --out directory and writes both files into it', () => {
    const out = join(dir, 'not', 'there', 'yet');
    const { markdownPath, jsonPath } = writeReport(structuredClone(committed), out);
    expect([existsSync(markdownPath), existsSync(jsonPath)]).toEqual([true, true]);
    expect(markdownPath.startsWith(out)).toBe(true);
  });

  it('calls flat Store calls what they are, and judges the server\'s work apart', () => {
    const results = structuredClone(committed);
    results.load = {
      redis: {
        writesPerSec: { t1: 0.6, t100: 0.6, t1000: 0.6 },
        roundTripsPerSec: { t1: 2.6, t100: 2.6, t1000: 2.7 },
        storeWork: { unit: 'commands', perSec: { t1: 10, t100: 60, t1000: 660 } },
      },
    };
    const { markdownPath } = writeReport(results, join(dir, 'claims'));
    const md = readFileSync(markdownPath, 'utf8');
    expect(md).not.toMatch(/\| store load flat/);
    expect(md).toContain('| Store calls per node flat in the number of tasks (t1000 ≤ 1.25 × t1) | redis |');
    expect(md).toMatch(/\| the store's own work per node flat in the number of tasks \(t1000 ≤ 1\.25 × t1\) \| redis \| commands\/s 10 → 660 \(66×\) \| \*\*no\*\* \|/);
  });

  it('writes the scale points under scale.<store>.n<nodes>t<tasks> and a row each, a point past the cap with its reason', () => {
    const results = structuredClone(committed);
    const point = {
      nodes: 3, tasks: 100, handles: 3, ownedMs: 1200, settleMs: 6400, readsPerSec: 5230.5, writesPerSec: 4.2,
      unit: { reads: 'rows read', writes: 'rows written' }, server: { reads: 5230.5, writes: 4.2, commits: 12 },
      callsPerSec: { reads: 4, writes: 1 }, cpu: 0.02, victimCpu: 0.01, windowS: 20, victimShare: 33, failoverMs: 310, spread: { min: 33, max: 34 },
    };
    results.scale = {
      postgres: {
        n3t100: point,
        n30t1000: { ...point, nodes: 30, tasks: 1000, settleMs: null, failoverMs: null, victimShare: null, reason: 'not settled within 120 s: 1000/1000 owned' },
      },
    };
    const out = join(dir, 'scale');
    const { markdownPath, jsonPath } = writeReport(results, out);
    const json = JSON.parse(readFileSync(jsonPath, 'utf8')) as { scale: Record<string, Record<string, Record<string, unknown>>> };
    expect(json.scale.postgres?.n3t100).toMatchObject({ settleMs: 6400, ownedMs: 1200, readsPerSec: 5230.5, writesPerSec: 4.2, cpu: 0.02, failoverMs: 310 });
    expect(json.scale.postgres?.n30t1000).toMatchObject({ settleMs: null, reason: 'not settled within 120 s: 1000/1000 owned' });
    const md = readFileSync(markdownPath, 'utf8');
    expect(md).toContain('## Scale');
    expect(md).toContain('| postgres | 3 | 100 | 3 | 1200 | 6400 | 33…34 | 5230.5 rows read | 4.2 rows written | 4 / 1 | 0.02 | 0.01 | 310 (33 tasks) |  |');
    expect(md).toMatch(/\| postgres \| 30 \| 1000 \| 3 \| 1200 \| — \| .* \| — \| not settled within 120 s: 1000\/1000 owned \|/);
  });
});
