/**
 * The CLI as a new user meets it (issue 23): a mistyped SQLite path or cluster name, a busy port, Ctrl-C in
 * the middle of the demo. Each answer is one line that says what is wrong and what exists; nothing is created
 * by mistake and nothing is left behind. Runs the built CLI (dist/), as `npx baton` would.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/stores/open-store.js';

const CLI = resolve(import.meta.dirname, '../../dist/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'baton-cli-'));
const db = join(dir, 'baton.db');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: readonly string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...env } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Exit code 1 and exactly one line on stderr (no stack trace). */
function oneLineError(result: { status: number | null; stderr: string }): string {
  expect(result.status).toBe(1);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  return lines[0] as string;
}

const READ_COMMANDS: readonly (readonly string[])[] = [['status'], ['serve', '--listen', '127.0.0.1:0'], ['run', 'backup']];

beforeAll(async () => {
  // A store holding two clusters, as nodes would leave it.
  for (const cluster of ['shop', 'ops']) {
    const store = await openStore(`sqlite:${db}`, { cluster });
    await store.put('hello', 1);
    await store.close();
  }
});

describe('read commands on a store that is not there', () => {
  it.each(READ_COMMANDS)('%s refuses an SQLite path with no file, names it, and creates nothing', (...command) => {
    const typo = join(dir, 'typo.db');
    const line = oneLineError(cli([...command, '--store', `sqlite:${typo}`, '--cluster', 'shop']));
    expect(line).toContain(`no database at ${typo}`);
    expect(line).toContain('[STORE_NOT_FOUND]');
    expect(existsSync(typo)).toBe(false);
  });

  it.each(READ_COMMANDS)('%s on an unknown or missing --cluster names the clusters the store holds', (...command) => {
    for (const clusterArgs of [['--cluster', 'shpo'], []]) {
      const line = oneLineError(cli([...command, '--store', `sqlite:${db}`, ...clusterArgs]));
      expect(line).toContain(`cluster "${clusterArgs[1] ?? 'default'}" not found`);
      expect(line).toContain('it holds "ops", "shop"');
      expect(line).toContain('[CLUSTER_NOT_FOUND]');
    }
  });

  it('status shows a cluster the store holds', () => {
    const result = cli(['status', '--store', `sqlite:${db}`, '--cluster', 'shop', '--json']);
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ cluster: 'shop' });
  });

  it('names the first 20 of many clusters, and how many more there are', async () => {
    const many = join(dir, 'many.db');
    for (let i = 0; i < 25; i++) {
      const store = await openStore(`sqlite:${many}`, { cluster: `c${String(i).padStart(2, '0')}` });
      await store.put('hello', 1);
      await store.close();
    }
    const line = oneLineError(cli(['status', '--store', `sqlite:${many}`, '--cluster', 'x']));
    expect(line).toContain('it holds "c00", "c01"');
    expect(line).toContain('"c19" and 5 more');
    expect(line).not.toContain('"c20"');
  });

  it('says so when the store holds no cluster yet', async () => {
    const empty = join(dir, 'empty.db');
    await (await openStore(`sqlite:${empty}`, { cluster: 'x' })).close();
    expect(oneLineError(cli(['status', '--store', `sqlite:${empty}`]))).toContain('it holds no cluster yet');
  });
});

describe('a server store that cannot be reached', () => {
  it('is named by its URL as given, the password hidden and only then, without jargon', () => {
    // Port 1 on loopback: refused at once.
    for (const [url, shown] of [
      ['postgres://app@127.0.0.1:1/test', 'postgres://app@127.0.0.1:1/test'],
      ['postgres://app:@127.0.0.1:1/test', 'postgres://app:@127.0.0.1:1/test'],
      ['postgres://app:s3cret@127.0.0.1:1/test', 'postgres://app:***@127.0.0.1:1/test'],
    ]) {
      const line = oneLineError(cli(['status', '--store', url as string]));
      expect(line).toBe(`baton: postgres store "${shown}": cannot connect: connect ECONNREFUSED 127.0.0.1:1 [STORE_UNAVAILABLE]`);
    }
  });
});

describe('baton serve on a busy port', () => {
  let busy: Server;
  beforeAll(async () => {
    busy = createServer();
    await new Promise<void>((ready) => busy.listen(0, '127.0.0.1', ready));
  });
  afterAll(() => new Promise<void>((done) => busy.close(() => done())));

  it('says which address is taken, in one line, and exits', () => {
    const { port } = busy.address() as AddressInfo;
    const line = oneLineError(cli(['serve', '--store', `sqlite:${db}`, '--cluster', 'shop', '--listen', `127.0.0.1:${port}`]));
    expect(line).toBe(`baton: monitor: cannot listen on 127.0.0.1:${port}: the address is already in use (another monitor?); choose another port [LISTEN_FAILED]`);
  });
});

describe('Ctrl-C during baton demo', () => {
  it('stops the nodes without broken-pipe errors and removes the temporary directory', async () => {
    const tmp = join(dir, 'tmp');
    mkdirSync(tmp);
    // Its own process group, signalled whole: what a terminal does on Ctrl-C (the nodes get SIGINT too).
    const child = spawn(process.execPath, [CLI, 'demo'], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: tmp } });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    await new Promise<void>((started, failed) => {
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes('owners:')) started();
      });
      child.once('exit', () => failed(new Error(`demo exited before its nodes started:\n${stdout}\n${stderr}`)));
    });
    expect(readdirSync(tmp)).toHaveLength(1); // the demo's directory, while it runs
    process.kill(-(child.pid as number), 'SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).not.toMatch(/EPIPE|Error|\n\s+at /);
    expect(stderr.trim()).toBe('baton demo: interrupted (SIGINT); nodes stopped, temporary files removed');
    expect(readdirSync(tmp)).toEqual([]);
  }, 60_000);
});
