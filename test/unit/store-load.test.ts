/**
 * A node's store load does not grow with its number of tasks: with idle tasks (nothing due), every store
 * call a node makes per minute is the same for 3 tasks and for 300 — renewals, placement scans and one
 * look at the cluster's triggers and pauses, none per task.
 */
import { afterEach, expect, it } from 'vitest';
import { Sim } from '../helpers/sim.js';

let sim: Sim;
afterEach(async () => {
  await sim?.closeAll();
});

async function callsPerMinute(tasks: number): Promise<number> {
  sim = new Sim();
  const declared = Array.from({ length: tasks }, (_, i) => [`idle-${i}`, { every: '24h' }] as [string, { every: string }]);
  const nodes = await Promise.all(['a', 'b', 'c'].map((id) => sim.node(id, declared)));
  // Placement settles (rebalancing after one TTL), then a quiet minute is counted.
  await sim.until(async () => (await sim.owners()).size === tasks && [...(await sim.owners()).values()].every(Boolean), 30_000, 100);
  await sim.advance(10_000, 100);
  const before = nodes.map((n) => n.calls.length);
  await sim.advance(60_000, 100);
  const calls = nodes.map((n, i) => n.calls.length - (before[i] ?? 0));
  await sim.closeAll();
  return Math.max(...calls);
}

it('a node makes as many store calls per minute for 300 idle tasks as for 3', async () => {
  const few = await callsPerMinute(3);
  const many = await callsPerMinute(300);
  // Per node and minute: ~36 renewals (TTL 3 s / 3), ~60 scans of 2 calls, 4 looks at the controls.
  expect(few).toBeLessThan(250);
  expect(many).toBeLessThanOrEqual(few * 1.1);
});

it('an idle node reads no task owner in a quiet minute: its view follows the store hints', async () => {
  sim = new Sim();
  const declared = Array.from({ length: 300 }, (_, i) => [`idle-${i}`, { every: '24h' }] as [string, { every: string }]);
  const nodes = await Promise.all(['a', 'b', 'c'].map((id) => sim.node(id, declared)));
  await sim.until(async () => (await sim.owners()).size === 300 && [...(await sim.owners()).values()].every(Boolean), 30_000, 100);
  await sim.advance(10_000, 100);
  const count = (method: string) => nodes.map((n) => n.calls.filter((c) => c.method === method).length);
  const [holdersBefore, keysBefore, sessionsBefore] = [count('listHolders'), count('holder'), count('listSessions')];
  await sim.advance(60_000, 100);
  const diff = (now: number[], before: number[]) => now.map((n, i) => n - (before[i] ?? 0));
  // Before the view, every scan (one per second) read every holder: 60 listHolders per node and minute.
  expect(diff(count('listHolders'), holdersBefore)).toEqual([0, 0, 0]);
  expect(diff(count('holder'), keysBefore)).toEqual([0, 0, 0]);
  // The memory store announces no expiry: sessions are re-read when one of them could have expired
  // (renewed every TTL / 3 = 1 s, they expire 2–3 s after a read), not every scan.
  for (const n of diff(count('listSessions'), sessionsBefore)) expect(n).toBeLessThanOrEqual(35);
});
