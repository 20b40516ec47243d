/**
 * The http-sync example runs end to end with one command (`tsx examples/http-sync/run.ts --json`, what
 * `npm run example:http-sync -- --json` runs after the build): the fixture API, 3 service processes, the
 * owner SIGKILLed mid-page. It prints one JSON line and exits 0 only when the target equals the source.
 */
import { spawn } from 'node:child_process';
import { expect, it } from 'vitest';

it('prints one line: target = source, no duplicates, no cursor regression, the invalid records rejected', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/http-sync/run.ts', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code, `${out}\n${err}`).toBe(0);
  const lines = out.trim().split('\n');
  expect(lines).toHaveLength(1);
  const result = JSON.parse(lines[0] as string) as Record<string, number>;
  expect(Object.keys(result)).toEqual(['sourceRows', 'targetRows', 'duplicates', 'rejected', 'cursorRegressions']);
  expect(result.sourceRows).toBeGreaterThan(400);
  expect(result.targetRows).toBe(result.sourceRows);
  expect(result.duplicates).toBe(0);
  expect(result.cursorRegressions).toBe(0);
  expect(result.rejected).toBeGreaterThan(15);
}, 90_000);
