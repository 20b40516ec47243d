/**
 * The lint rule behind "time is injected": library code never reads or waits on real time directly; it
 * goes through the Clock (src/core/clock.ts). The CLI and the testing helpers are outside the rule.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../../src');
// agent/watchdog.ts holds the source of a separate process (run with `node -e`), which has no Clock.
const EXEMPT = ['cli/', 'testing/', 'core/clock.ts', 'agent/watchdog.ts'];
const BARE_TIME = /\b(Date\.now\(|new Date\(\)|setTimeout\(|setInterval\(|performance\.now\()/;

function sources(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name), `${prefix}${entry.name}/`) : entry.name.endsWith('.ts') ? [`${prefix}${entry.name}`] : [],
  );
}

describe('injected clock', () => {
  it('library code uses no bare Date.now/setTimeout/setInterval/performance.now', () => {
    const offenders: string[] = [];
    const files = sources(ROOT);
    expect(files.length).toBeGreaterThan(15);
    for (const file of files) {
      if (EXEMPT.some((e) => file.startsWith(e) || file === e)) continue;
      readFileSync(join(ROOT, file), 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (BARE_TIME.test(line) && !line.trim().startsWith('*') && !line.trim().startsWith('//')) offenders.push(`${file}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(offenders).toEqual([]);
  });
});
