/** The checker must catch what it claims to catch: each rule fed a history that breaks it, and a clean one. */
import { describe, expect, it } from 'vitest';
import { checkHistory, runKeyOf, type CheckInput } from './checker.js';
import type { FinalRecord, HistoryEvent } from './history.js';

const TASK = 't0';
const EVERY = 100;

/** A clean history: node a owns t0 with token 1 and runs ticks 1000, 1100; node b takes over with token 2. */
function clean(): { events: HistoryEvent[]; final: FinalRecord[] } {
  const events: HistoryEvent[] = [
    { e: 'acquire', node: 'a', key: 'task/t0', session: 'sa', invokeM: 0, completeM: 1, result: 'ok', token: '1' },
    { e: 'run', node: 'a', what: 'start', task: TASK, tick: 1000, token: '1', m: 2 },
    claim('a', 1000, '1', 2, 3),
    fencedPut('a', 'chaos/ledger/t0', '1', 4, 5, 1),
    fencedPut('a', 'checkpoint/t0', '1', 6, 7, 1),
    { e: 'run', node: 'a', what: 'start', task: TASK, tick: 1100, token: '1', m: 8 },
    claim('a', 1100, '1', 8, 9),
    fencedPut('a', 'chaos/ledger/t0', '1', 10, 11, 2),
    fencedPut('a', 'checkpoint/t0', '1', 12, 13, 2),
    { e: 'acquire', node: 'b', key: 'task/t0', session: 'sb', invokeM: 20, completeM: 21, result: 'ok', token: '2' },
    { e: 'run', node: 'b', what: 'start', task: TASK, tick: 1300, token: '2', m: 22 },
    claim('b', 1300, '2', 22, 23),
    fencedPut('b', 'chaos/ledger/t0', '2', 24, 25, 3),
    fencedPut('b', 'checkpoint/t0', '2', 26, 27, 3),
    // a zombie write by a after b's acquisition, refused by the store: fine
    { ...fencedPut('a', 'chaos/ledger/t0', '1', 30, 31, 0), result: 'fenced' },
  ];
  const final: FinalRecord[] = [
    { key: runKeyOf(TASK, 1000), value: { task: TASK, tick: 1000, status: 'succeeded', token: '1' }, version: 1 },
    { key: runKeyOf(TASK, 1100), value: { task: TASK, tick: 1100, status: 'succeeded', token: '1' }, version: 1 },
    { key: runKeyOf(TASK, 1200), value: { task: TASK, tick: 1200, status: 'missed', missed: { from: 1200, count: 1, reason: 'no-owner' } }, version: 1 },
    { key: runKeyOf(TASK, 1300), value: { task: TASK, tick: 1300, status: 'succeeded', token: '2' }, version: 1 },
    { key: 'chaos/ledger/t0', value: { token: '2' }, version: 3 },
    { key: 'checkpoint/t0', value: { value: 3, token: '2' }, version: 3 },
  ];
  return { events, final };
}

function claim(node: string, tick: number, token: string, invokeM: number, completeM: number): HistoryEvent {
  return { e: 'put', node, key: runKeyOf(TASK, tick), fenceKey: 'task/t0', fenceToken: token, guarded: true, ifVersion: 'absent', invokeM, completeM, result: 'ok', version: 1 };
}

function fencedPut(node: string, key: string, token: string, invokeM: number, completeM: number, version: number): HistoryEvent & { e: 'put' } {
  return { e: 'put', node, key, fenceKey: 'task/t0', fenceToken: token, guarded: true, invokeM, completeM, result: 'ok', version };
}

const input = (h: { events: HistoryEvent[]; final: FinalRecord[] }): CheckInput => ({ ...h, tasks: [{ name: TASK, intervalMs: EVERY }] });
const kinds = (h: { events: HistoryEvent[]; final: FinalRecord[] }) => checkHistory(input(h)).violations.map((v) => v.kind);

describe('chaos history checker', () => {
  it('passes a clean history (with a refused zombie write and a recorded miss)', () => {
    const result = checkHistory(input(clean()));
    expect(result.violations).toEqual([]);
    expect(result.undecidable).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.stats).toMatchObject({ runs: 3, acquisitions: 2, fencedRefusals: 1, missedTicks: 1 });
  });

  it('reports a tick run twice', () => {
    const h = clean();
    h.events.push({ e: 'run', node: 'b', what: 'start', task: TASK, tick: 1100, token: '2', m: 40 });
    expect(kinds(h)).toContain('double-run');
  });

  it('reports two winning claims of one tick', () => {
    const h = clean();
    h.events.push({ ...(claim('b', 1100, '2', 40, 41) as HistoryEvent & { e: 'put' }), version: 2 });
    h.final[1] = { ...(h.final[1] as FinalRecord), version: 2 };
    expect(kinds(h)).toContain('double-claim');
  });

  it('accepts a claim withdrawn by its writer (claimed ahead, stopped before the tick) and taken again', () => {
    const h = clean();
    // a claims tick 1200 ahead, withdraws it at its version on a hand-over; b claims and runs it (version 1 again)
    h.events.push(claim('a', 1200, '1', 14, 15));
    h.events.push({ e: 'delete', node: 'a', key: runKeyOf(TASK, 1200), ifVersion: 1, guarded: true, invokeM: 16, completeM: 17, result: 'deleted' });
    h.events.push({ e: 'run', node: 'b', what: 'start', task: TASK, tick: 1200, token: '2', m: 28 });
    h.events.push(claim('b', 1200, '2', 28, 29));
    h.final[2] = { key: runKeyOf(TASK, 1200), value: { task: TASK, tick: 1200, status: 'succeeded', token: '2' }, version: 1 };
    const result = checkHistory(input(h));
    expect(result.violations).toEqual([]);
    expect(result.undecidable).toEqual([]);
  });

  it('accepts a withdrawn claim that no one took again (every node stopped)', () => {
    const h = clean();
    h.events.push(claim('b', 1400, '2', 32, 33));
    h.events.push({ e: 'delete', node: 'b', key: runKeyOf(TASK, 1400), ifVersion: 1, guarded: true, invokeM: 34, completeM: 35, result: 'deleted' });
    expect(checkHistory(input(h)).undecidable).toEqual([]);
  });

  it('still reports two winning claims when the delete was not the first claimer\'s withdrawal', () => {
    const h = clean();
    h.events.push({ e: 'delete', node: 'b', key: runKeyOf(TASK, 1100), ifVersion: 1, guarded: true, invokeM: 38, completeM: 39, result: 'deleted' });
    h.events.push(claim('b', 1100, '2', 40, 41));
    expect(kinds(h)).toContain('double-claim');
  });

  it('reports a stale write the store accepted', () => {
    const h = clean();
    // a's zombie write under token 1, invoked after b got token 2, and accepted (version 4)
    h.events.push(fencedPut('a', 'chaos/ledger/t0', '1', 30, 31, 4));
    h.final[4] = { key: 'chaos/ledger/t0', value: { token: '1' }, version: 4 };
    const found = kinds(h);
    expect(found).toContain('stale-write');
    expect(found).toContain('overlap');
  });

  it('reports a token going backwards', () => {
    const h = clean();
    h.events.push({ e: 'acquire', node: 'c', key: 'task/t0', session: 'sc', invokeM: 50, completeM: 51, result: 'ok', token: '1' });
    expect(kinds(h)).toContain('token-order');
  });

  it('reports a token repeated for another session, but not a re-acquisition by the holder', () => {
    const repeated = clean();
    repeated.events.push({ e: 'acquire', node: 'c', key: 'task/t0', session: 'sc', invokeM: 50, completeM: 51, result: 'ok', token: '2' });
    expect(kinds(repeated)).toContain('token-order');
    const reacquired = clean();
    reacquired.events.push({ e: 'acquire', node: 'b', key: 'task/t0', session: 'sb', invokeM: 50, completeM: 51, result: 'ok', token: '2' });
    expect(kinds(reacquired)).toEqual([]);
  });

  it('reports a lost tick: neither run nor recorded missed', () => {
    const h = clean();
    h.final.splice(2, 1); // the "missed" record of tick 1200
    expect(kinds(h)).toContain('lost-tick');
  });

  it('reports a run the store has no claim of, and a lost checkpoint update', () => {
    const unrecorded = clean();
    unrecorded.events.push({ e: 'run', node: 'b', what: 'start', task: TASK, tick: 1400, token: '2', m: 40 });
    expect(kinds(unrecorded)).toContain('unrecorded-run');
    const lost = clean();
    lost.final[5] = { key: 'checkpoint/t0', value: { value: 2, token: '2' }, version: 3 };
    expect(kinds(lost)).toContain('lost-update');
  });

  it('counts an undecidable history as a failure', () => {
    const malformed = checkHistory({ ...input(clean()), malformed: ['n0.jsonl: {"e":"put","ke'] });
    expect(malformed.ok).toBe(false);
    expect(malformed.undecidable).toHaveLength(1);
    const nothing = checkHistory({ events: [], final: [], tasks: [{ name: TASK, intervalMs: EVERY }] });
    expect(nothing.ok).toBe(false);
    const missingFinal = clean();
    missingFinal.final.splice(4, 1); // the ledger's final record
    expect(checkHistory(input(missingFinal)).ok).toBe(false);
  });
});
