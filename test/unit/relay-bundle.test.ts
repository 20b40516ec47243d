import { describe, expect, it } from 'vitest';
import { BUNDLE_MAX_BYTES, BUNDLE_MAX_CHANGES, bundle } from '../../src/relay/outbox.js';
import { joinRows } from '../../src/relay/publisher.js';

const envelope = (target: string, part: number, n: number, pad = 0) => ({ target, part, body: JSON.stringify({ n, pad: 'x'.repeat(pad) }) });
const numbers = (body: string) => (JSON.parse(body) as { n: number }[]).map((e) => e.n);

describe('relay bundles', () => {
  it('writes one outbox row per (target, partition), keeping the order within each', () => {
    const rows = bundle([envelope('b1', 0, 1), envelope('b2', 0, 2), envelope('b1', 1, 3), envelope('b1', 0, 4), envelope('b2', 0, 5)]);
    expect(rows.map((r) => [r.target, r.part, numbers(r.body), r.changes])).toEqual([
      ['b1', 0, [1, 4], 2],
      ['b2', 0, [2, 5], 2],
      ['b1', 1, [3], 1],
    ]);
  });

  it('closes a row at its change or byte cap; the rows of one stream stay in order', () => {
    const many = Array.from({ length: BUNDLE_MAX_CHANGES + 3 }, (_, i) => envelope('b1', 0, i));
    const rows = bundle(many);
    expect(rows.map((r) => r.changes)).toEqual([BUNDLE_MAX_CHANGES, 3]);
    expect(rows.flatMap((r) => numbers(r.body))).toEqual(many.map((_, i) => i));
    const big = Array.from({ length: 5 }, (_, i) => envelope('b1', 0, i, BUNDLE_MAX_BYTES / 2));
    expect(bundle(big).map((r) => r.changes)).toEqual([1, 1, 1, 1, 1]);
  });

  it('joins the rows of one queue into one message, textually and in id order, and splits at 1,000 changes', () => {
    const row = (id: number, target: string, part: number, ns: number[]) => ({ id: String(id), target, part, body: `[${ns.map((n) => JSON.stringify({ n })).join(',')}]`, changes: ns.length });
    const messages = joinRows([row(1, 'b1', 0, [1, 2]), row(2, 'c1', 0, [3]), row(3, 'b1', 0, [4]), row(4, 'b1', 0, Array.from({ length: 999 }, (_, i) => 5 + i))]);
    expect(messages.map((m) => [m.target, m.part, m.ids, numbers(m.body).length])).toEqual([
      ['b1', 0, ['1', '3'], 3],
      ['c1', 0, ['2'], 1],
      ['b1', 0, ['4'], 999],
    ]);
    expect(numbers(messages[0]!.body)).toEqual([1, 2, 4]);
  });
});
