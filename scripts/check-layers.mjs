#!/usr/bin/env node
// The layer rules of docs/architecture.md, checked on every import of src/ (static, dynamic and
// type-only alike): each part may import only the parts listed for it, and no files import each other
// in a circle. Exits 1 naming every offending import. Run by `npm test` (and so by CI).
// Usage: node scripts/check-layers.mjs [SRC_DIR]   (default: this checkout's src/)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const src = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'src'));
const root = dirname(src);

/** What each part may import besides itself; the order of DESIGN.md's arrow, top to bottom. */
const ALLOWED = {
  cli: ['agent', 'monitor', 'sync', 'relay', 'node', 'scheduler', 'cluster', 'stores', 'sql', 'core'],
  'index.ts': ['node', 'scheduler', 'cluster', 'monitor', 'stores', 'core'],
  agent: ['node', 'monitor', 'scheduler', 'cluster', 'stores', 'core'],
  sync: ['node', 'scheduler', 'sql', 'core'],
  node: ['monitor', 'scheduler', 'cluster', 'stores', 'core'],
  monitor: ['scheduler', 'cluster', 'stores', 'core'],
  scheduler: ['cluster', 'stores', 'core'],
  cluster: ['stores', 'core'],
  stores: ['sql', 'core'],
  relay: ['sql', 'core'],
  sql: ['core'],
  testing: ['stores', 'core'],
  core: [],
};

function walk(dir, out = []) {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (entry.endsWith('.ts')) out.push(path);
  }
  return out;
}

/** The part a file of src/ belongs to: its top folder, or the file's own name at the top. */
const partOf = (file) => relative(src, file).split(sep)[0];

/** Every relative import of a file, resolved to a .ts file of src/. */
function importsOf(file) {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((name) => name.startsWith('.'))
    .map((name) => resolve(dirname(file), name).replace(/\.js$/, '.ts'));
}

const files = walk(src);
const graph = new Map(files.map((file) => [file, importsOf(file)]));
const problems = [];

for (const [file, imports] of graph) {
  const from = partOf(file);
  const allowed = ALLOWED[from];
  if (!allowed) {
    problems.push(`${relative(root, file)}: part "${from}" has no layer rule (add it to scripts/check-layers.mjs and docs/architecture.md)`);
    continue;
  }
  for (const target of imports) {
    if (!target.startsWith(src + sep)) {
      problems.push(`${relative(root, file)} imports ${relative(root, target)}, outside src/`);
      continue;
    }
    const to = partOf(target);
    if (to !== from && !allowed.includes(to)) {
      problems.push(`${relative(root, file)} imports ${relative(root, target)}: ${from} may import only ${allowed.join(', ') || 'nothing'}`);
    }
  }
}

// Import circles between files (Tarjan's strongly connected components).
let index = 0;
const stack = [];
const state = new Map();
function connect(file) {
  const s = { index, low: index, onStack: true };
  index += 1;
  state.set(file, s);
  stack.push(file);
  for (const next of graph.get(file) ?? []) {
    if (!graph.has(next)) continue;
    const t = state.get(next);
    if (!t) {
      connect(next);
      s.low = Math.min(s.low, state.get(next).low);
    } else if (t.onStack) s.low = Math.min(s.low, t.index);
  }
  if (s.low === s.index) {
    const component = [];
    let member;
    do {
      member = stack.pop();
      state.get(member).onStack = false;
      component.push(member);
    } while (member !== file);
    if (component.length > 1) problems.push(`import circle: ${component.map((f) => relative(root, f)).sort().join(' ↔ ')}`);
  }
}
for (const file of graph.keys()) if (!state.has(file)) connect(file);

if (problems.length > 0) {
  process.stderr.write(`check-layers: ${problems.length} problem(s) (rules: docs/architecture.md)\n${problems.map((p) => `  ${p}`).join('\n')}\n`);
  process.exit(1);
}
process.stdout.write(`check-layers: ${files.length} files of src/, every import follows the layer rules, no import circle\n`);
