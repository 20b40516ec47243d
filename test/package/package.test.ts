/**
 * The package as a new user gets it: `npm pack`, then the tarball installed into an empty temporary project
 * with only the driver its store needs, the CLI's `baton demo --json`, and a TypeScript program importing
 * every subpath export (consumer.ts), compiled by `tsc` (strict, libraries checked) and run.
 *
 * - SQLite, the embedded default: the tarball alone (better-sqlite3 comes as its optional dependency).
 *   A server store without its driver fails with one line naming the package to install.
 * - PostgreSQL: the tarball and `pg`, optional dependencies omitted (no better-sqlite3 at all); the
 *   embedded default then says which package to install.
 *
 * Slow by nature (two installs; better-sqlite3 compiles from source where no prebuilt binary can be
 * fetched): about two minutes here.
 */
import { execFile, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVER_BACKENDS } from '../helpers/backends.js';

const REPO = resolve(import.meta.dirname, '../..');
const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
const POSTGRES = (SERVER_BACKENDS.find((b) => b.kind === 'postgres') as (typeof SERVER_BACKENDS)[number]).url('127.0.0.1', 5432);
const INSTALL_MS = 600_000;

const manifest = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { name: string; bin: Record<string, string>; exports: Record<string, unknown> };
const work = mkdtempSync(join(tmpdir(), 'baton-package-'));
let tarball = '';

/** The environment of a user's shell: without the npm_* variables of the `npm test` that runs us. */
const userEnv: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name) && name !== 'INIT_CWD' && name !== 'NODE_OPTIONS'),
);

function run(command: string, args: readonly string[], cwd: string, timeout = 120_000): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd, env: userEnv, encoding: 'utf8', timeout });
}

function ok(result: SpawnSyncReturns<string>, what: string): string {
  if (result.status !== 0) throw new Error(`${what} exited ${result.status ?? result.signal}:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** An empty project (`"type": "module"`) with `packages` installed by npm, as a user would. */
async function project(name: string, packages: readonly string[], flags: readonly string[] = []): Promise<string> {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }, null, 2));
  // Asynchronous: the install takes a while and vitest's timers must keep running.
  await promisify(execFile)('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...flags, tarball, ...packages], {
    cwd: dir,
    env: userEnv,
    timeout: INSTALL_MS,
    maxBuffer: 16 * 1024 * 1024,
  });
  return dir;
}

/** `npx baton …` in `dir`, with a temporary directory of its own: what the demo leaves behind is seen. */
function baton(dir: string, args: readonly string[]): SpawnSyncReturns<string> {
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp, { recursive: true });
  return spawnSync('npx', ['--no', 'baton', ...args], { cwd: dir, env: { ...userEnv, TMPDIR: tmp }, encoding: 'utf8', timeout: 120_000 });
}

/** Nothing left in the temporary directory of `baton` commands run in `dir`. */
function expectNothingLeft(dir: string): void {
  expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
}

/** consumer.ts compiled with the project's view of the package (strict, skipLibCheck off), then run. */
function compileAndRun(dir: string, storeUrl: string): { package: string; store: string; runs: number } {
  writeFileSync(join(dir, 'consumer.ts'), readFileSync(join(import.meta.dirname, 'consumer.ts'), 'utf8'));
  const compilerOptions = {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    skipLibCheck: false,
    types: ['node'],
    outDir: 'out',
  };
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['consumer.ts'] }, null, 2));
  ok(run(process.execPath, [TSC, '-p', 'tsconfig.json'], dir), 'tsc');
  const out = ok(run(process.execPath, ['out/consumer.js', storeUrl], dir, 60_000), 'node out/consumer.js');
  return JSON.parse(out.trim().split('\n').at(-1) as string) as { package: string; store: string; runs: number };
}

function demo(dir: string, args: readonly string[] = []): { store: string; nodes: number; duplicateTicks: number; ticksRun: number } {
  const out = ok(baton(dir, ['demo', '--json', '--act-seconds', '1', ...args]), 'baton demo');
  return JSON.parse(out.trim()) as { store: string; nodes: number; duplicateTicks: number; ticksRun: number };
}

/** A missing driver: exit code 1 and one line on stderr that names the package to install. */
function expectMissingDriver(result: SpawnSyncReturns<string>, packageName: string): void {
  expect(result.status).toBe(1);
  const lines = result.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(`npm install ${packageName}`);
  expect(lines[0]).toContain('[DRIVER_MISSING]');
}

beforeAll(() => {
  // `npm test` has just built dist/; packing must not rebuild it under the other test files' feet.
  if (!existsSync(join(REPO, 'dist', 'index.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  const packed = ok(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], REPO), 'npm pack');
  const [info] = JSON.parse(packed) as { filename: string; files: { path: string }[] }[];
  tarball = join(work, (info as { filename: string }).filename);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the packed tarball', () => {
  it('ships the built code, its declarations, README, LICENSE and docs, and nothing that points outside it', () => {
    const listing = ok(run('tar', ['-tzf', tarball], work), 'tar').trim().split('\n');
    const files = listing.map((f) => f.replace(/^package\//, ''));
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js']));
    // The dashboard's static files (copied by the build: tsc compiles TypeScript only).
    expect(files).toEqual(expect.arrayContaining(['dist/monitor/assets/index.html', 'dist/monitor/assets/dashboard.js', 'dist/monitor/assets/dashboard.css']));
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(files.filter((f) => !/^(dist|docs)\/|^(package\.json|README\.md|LICENSE)$/.test(f))).toEqual([]);
    // Every export and the bin point at files that are in the tarball.
    const targets = Object.values(manifest.exports).flatMap((target) => (typeof target === 'string' ? [target] : Object.values(target as Record<string, string>)));
    for (const target of [...targets, ...Object.values(manifest.bin)]) expect(files).toContain(target.replace(/^\.\//, ''));
  });

  it('consumer.ts imports every subpath export of package.json', () => {
    const source = readFileSync(join(import.meta.dirname, 'consumer.ts'), 'utf8');
    const imported = [...source.matchAll(/(?:from |resolve\()'(baton-fleet[^']*)'/g)].map((m) => `.${(m[1] as string).slice(manifest.name.length)}`);
    expect(new Set(imported)).toEqual(new Set(Object.keys(manifest.exports)));
  });
});

describe('installed alone, on SQLite (the embedded default)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await project('on-sqlite', ['@types/node@^20']);
  }, INSTALL_MS);

  it('runs `baton demo --json` with nothing else installed', () => {
    expect(existsSync(join(dir, 'node_modules', 'pg'))).toBe(false);
    const summary = demo(dir);
    expect(summary).toMatchObject({ store: 'sqlite', nodes: 3, duplicateTicks: 0 });
    expect(summary.ticksRun).toBeGreaterThan(0);
    expectNothingLeft(dir);
  }, 120_000);

  it('compiles and runs a program importing every subpath export', () => {
    const db = join(dir, 'consumer.db');
    expect(compileAndRun(dir, `sqlite:${db}`)).toMatchObject({ package: manifest.name, store: 'sqlite', runs: 1 });
  }, 120_000);

  it('serves the dashboard and its files from the installed package', () => {
    // A monitor of baton-fleet/monitor on a fresh SQLite file, asked for the page and one of its modules.
    const program = `
      import { startMonitor } from 'baton-fleet/monitor';
      const token = 'package-test-token-0000';
      const m = await startMonitor({ store: 'sqlite:' + process.argv[1], cluster: 'pkg', listen: '127.0.0.1:0', token });
      const auth = { headers: { Authorization: 'Bearer ' + token } };
      const page = await fetch(m.url, auth);
      const script = await fetch(new URL('/assets/dashboard.js', m.url));
      console.log(JSON.stringify({ page: page.status, csp: page.headers.get('content-security-policy'), html: (await page.text()).includes('/assets/dashboard.js'), script: script.status, type: script.headers.get('content-type') }));
      await m.close();`;
    const out = ok(spawnSync(process.execPath, ['--input-type=module', '-e', program, join(dir, 'tmp', 'served.db')], { cwd: dir, env: userEnv, encoding: 'utf8', timeout: 60_000 }), 'the monitor');
    const served = JSON.parse(out.trim().split('\n').at(-1) as string) as { page: number; csp: string; html: boolean; script: number; type: string };
    expect(served).toMatchObject({ page: 200, html: true, script: 200, type: 'text/javascript; charset=utf-8' });
    expect(served.csp).not.toContain('unsafe-inline');
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(dir, 'tmp', `served.db${suffix}`), { force: true });
  }, 60_000);

  it('names the package to install when a store URL needs a driver that is not there', () => {
    expectMissingDriver(baton(dir, ['status', '--store', POSTGRES]), 'pg');
    expectMissingDriver(baton(dir, ['status', '--store', 'redis://127.0.0.1:6379/0']), 'ioredis');
  }, 60_000);
});

describe('installed with pg only, on PostgreSQL', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await project('on-postgres', ['pg', '@types/node@^20'], ['--omit=optional']);
  }, INSTALL_MS);

  it('runs `baton demo --json` on PostgreSQL without better-sqlite3 installed', () => {
    expect(existsSync(join(dir, 'node_modules', 'better-sqlite3'))).toBe(false);
    expect(demo(dir, ['--store', POSTGRES])).toMatchObject({ store: 'postgres', nodes: 3, duplicateTicks: 0 });
  }, 120_000);

  it('compiles and runs a program importing every subpath export', () => {
    expect(compileAndRun(dir, POSTGRES)).toMatchObject({ package: manifest.name, store: 'postgres', runs: expect.any(Number) });
  }, 120_000);

  it('names better-sqlite3 when the embedded default is asked for without it', () => {
    expectMissingDriver(baton(dir, ['demo', '--json']), 'better-sqlite3');
    expectNothingLeft(dir);
  }, 60_000);
});
