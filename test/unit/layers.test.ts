/** The layer check of CI (scripts/check-layers.mjs): passes on src/, and fails on a wrong import and on a circle. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const script = join(import.meta.dirname, '../../scripts/check-layers.mjs');

function check(srcDir?: string): { code: number; output: string } {
  try {
    const output = execFileSync(process.execPath, [script, ...(srcDir ? [srcDir] : [])], { encoding: 'utf8', stdio: 'pipe' });
    return { code: 0, output };
  } catch (error) {
    const e = error as { status: number; stderr: string };
    return { code: e.status, output: e.stderr };
  }
}

describe('layer check', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  function tree(files: Record<string, string>): string {
    const src = join(mkdtempSync(join(tmpdir(), 'baton-layers-')), 'src');
    dirs.push(dirname(src));
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(src, path)), { recursive: true });
      writeFileSync(join(src, path), text);
    }
    return src;
  }

  it('passes on this checkout', () => {
    const { code, output } = check();
    expect(code).toBe(0);
    expect(output).toMatch(/every import follows the layer rules, no import circle/);
  });

  it('fails on an import that goes up a layer, naming the file and the rule', () => {
    const src = tree({
      'cluster/lock.ts': "import type { Task } from '../scheduler/task.js';\nexport const x = 1;\n",
      'scheduler/task.ts': 'export type Task = string;\n',
    });
    const { code, output } = check(src);
    expect(code).toBe(1);
    expect(output).toMatch(/cluster\/lock\.ts imports src\/scheduler\/task\.ts: cluster may import only stores, core/);
  });

  it('fails on an import circle, also a dynamic one inside one part', () => {
    const src = tree({
      'scheduler/a.ts': "import { b } from './b.js';\nexport const a = b;\n",
      'scheduler/b.ts': "export const b = 1;\nexport const load = () => import('./a.js');\n",
    });
    const { code, output } = check(src);
    expect(code).toBe(1);
    expect(output).toMatch(/import circle: src\/scheduler\/a\.ts ↔ src\/scheduler\/b\.ts/);
  });

  it('fails on a part without a rule', () => {
    const { code, output } = check(tree({ 'gadgets/x.ts': 'export const x = 1;\n' }));
    expect(code).toBe(1);
    expect(output).toMatch(/part "gadgets" has no layer rule/);
  });
});
