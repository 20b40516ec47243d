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
});
