/**
 * Agent.reload on a live agent (memory store, real commands): an updated command swaps in place under the
 * same lease, a redeclared task gets a new lease, a removed one stops running, an added one runs.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/logger.js';
import { randomId } from '../../src/core/ids.js';
import { parseYamlText } from '../../src/core/config-file.js';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import { parseAgentConfig } from '../../src/agent/config.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-live-reload-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let agent: Agent | undefined;
afterEach(async () => {
  await agent?.close();
  agent = undefined;
});

const config = async (store: string, tasks: string) => parseAgentConfig(await parseYamlText(`store: "${store}"\ncluster: live\ntasks:\n${tasks}`, 'live.yaml'), 'live.yaml');
const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : []);

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('Agent.reload on a running agent', () => {
  it('swaps an updated command under the same lease, redeclares, removes and adds tasks', async () => {
    const store = `memory:${randomId(6)}`;
    const out = join(dir, 'out.log');
    const task = (name: string, every: string, word: string) => `  ${name}:\n    every: ${every}\n    command: echo "${name} ${word}" >> ${out}\n`;
    agent = await startAgent(await config(store, task('keep', '1s', 'v1') + task('resched', '1s', 'x') + task('gone', '1s', 'x')), { logger: silentLogger });
    const owner = async (name: string) => (await agent!.cluster.status()).tasks.find((t) => t.unit === name)?.owner;
    await waitFor('first runs', () => lines(out).some((l) => l === 'keep v1') && lines(out).some((l) => l.startsWith('gone')));
    const keepToken = (await owner('keep'))?.token;
    const reschedToken = (await owner('resched'))?.token;

    const diff = await agent.reload(await config(store, task('keep', '1s', 'v2') + task('resched', '2s', 'x') + task('fresh', '1s', 'x')));
    expect(diff).toMatchObject({ updated: ['keep'], redeclared: ['resched'], added: ['fresh'], removed: ['gone'], unchanged: [] });
    expect([...agent.config.tasks.keys()]).toEqual(['keep', 'resched', 'fresh']);
    const goneRuns = lines(out).filter((l) => l.startsWith('gone')).length;
    await waitFor('the new command and the added task', () => lines(out).includes('keep v2') && lines(out).includes('fresh x'));
    // Updated in place: same lease. Redeclared: a new one.
    expect((await owner('keep'))?.token).toBe(keepToken);
    await waitFor('resched owned again', async () => (await owner('resched')) != null);
    expect((await owner('resched'))?.token).not.toBe(reschedToken);
    // Removed: no more runs, and no owner.
    await new Promise((r) => setTimeout(r, 1500));
    expect(lines(out).filter((l) => l.startsWith('gone')).length).toBe(goneRuns);
    expect(await owner('gone')).toBeFalsy();
  }, 30_000);
});
