import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { canonicalPayload, encodeEnvelope, newChangeId, parseEnvelope, timeOfChangeId, type Envelope, type UnsignedEnvelope } from '../../src/sync/relay/envelope.js';
import { EnvelopeError, SignatureError } from '../../src/sync/relay/errors.js';
import { parseSigningKeys, Signer } from '../../src/sync/relay/signature.js';

const K1 = 'k1-secret-0123456789abcdefghijklmnop';
const K2 = 'k2-secret-0123456789abcdefghijklmnop';

function base(clock = new FakeClock(1_700_000_000_000)): Omit<UnsignedEnvelope, 'kid'> {
  return {
    v: 1,
    id: newChangeId(clock),
    origin: 'a1',
    app: 'shop',
    key: 'sku-1',
    seq: 3,
    rk: 'eu.orders',
    route: { b1: { c1: {} } },
    visited: ['a1'],
    statement: 'put',
    args: { k: 'sku-1', n: 2 },
    createdAt: 1_700_000_000_000,
  };
}

describe('relay envelope', () => {
  it("ids are 26 characters and ordered by time", async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const first = newChangeId(clock);
    await clock.advance(1);
    const second = newChangeId(clock);
    expect(first).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(second > first).toBe(true);
    expect(timeOfChangeId(first)).toBe(1_700_000_000_000);
  });

  it('round-trips through the wire format and verifies', () => {
    const signer = new Signer({ current: 'k1', keys: { k1: K1 } });
    const signed = signer.sign(base());
    const parsed = parseEnvelope(encodeEnvelope(signed));
    expect(parsed).toEqual(signed);
    expect(() => signer.verify(parsed)).not.toThrow();
  });

  it('signs a canonical form: key order does not matter, any change of a field does', () => {
    const signer = new Signer({ current: 'k1', keys: { k1: K1 } });
    const signed = signer.sign(base());
    const reordered = JSON.parse(JSON.stringify({ ...signed, args: { n: 2, k: 'sku-1' } })) as Envelope;
    expect(() => signer.verify(reordered)).not.toThrow();
    const tampered: Partial<Record<keyof Envelope, unknown>>[] = [
      { args: { k: 'sku-1', n: 3 } },
      { statement: 'drop' },
      { visited: ['a1', 'b1'] },
      { route: { b1: {} } },
      { seq: 4 },
      { key: 'sku-2' },
    ];
    for (const change of tampered) {
      expect(() => signer.verify({ ...signed, ...change } as Envelope)).toThrow(SignatureError);
    }
    expect(canonicalPayload({ ...signed, args: { b: 1, a: { d: 1, c: 2 } } })).toContain('{"a":{"c":2,"d":1},"b":1}');
  });

  it('rotates keys: old messages verify while the old key is held, new ones use the current key', () => {
    const before = new Signer({ current: 'k1', keys: { k1: K1 } });
    const during = new Signer({ current: 'k2', keys: { k1: K1, k2: K2 } });
    const after = new Signer({ current: 'k2', keys: { k2: K2 } });
    const old = before.sign(base());
    const fresh = during.sign(base());
    expect(fresh.kid).toBe('k2');
    expect(() => during.verify(old)).not.toThrow();
    expect(() => after.verify(fresh)).not.toThrow();
    expect(() => after.verify(old)).toThrow(/signed with key "k1", which this relay does not hold/);
    expect(() => before.verify(fresh)).toThrow(SignatureError);
    // A key id that exists with another secret does not verify.
    const impostor = new Signer({ current: 'k1', keys: { k1: 'another-secret-0123456789abcdefghijkl' } });
    expect(() => before.verify(impostor.sign(base()))).toThrow(/signature does not match/);
  });

  it('rejects weak or missing keys without printing secrets', () => {
    expect(() => new Signer({ current: 'k1', keys: { k1: 'short' } })).toThrow(/at least 32 bytes/);
    expect(() => new Signer({ current: 'k9', keys: { k1: K1 } })).toThrow(ConfigError);
    const keys = parseSigningKeys(`k2=${K2},k1=${K1}`);
    expect(keys.current).toBe('k2');
    expect(Object.keys(keys.keys)).toEqual(['k2', 'k1']);
    try {
      parseSigningKeys(`k2${K2}`);
    } catch (error) {
      expect((error as Error).message).not.toContain(K2);
    }
  });

  it('refuses malformed envelopes, naming the field', () => {
    const signer = new Signer({ current: 'k1', keys: { k1: K1 } });
    const good = signer.sign(base()) as unknown as Record<string, unknown>;
    const bad = (patch: Record<string, unknown>) => () => parseEnvelope(JSON.stringify({ ...good, ...patch }));
    expect(() => parseEnvelope('not json')).toThrow(EnvelopeError);
    expect(bad({ v: 2 })).toThrow(/envelope\.v: version 2/);
    expect(bad({ id: 'x' })).toThrow(/envelope\.id/);
    expect(bad({ seq: 0 })).toThrow(/envelope\.seq/);
    expect(bad({ visited: ['b1'] })).toThrow(/must start with the origin/);
    expect(bad({ visited: ['a1', 'b1', 'a1'] })).toThrow(/a loop/);
    expect(bad({ route: { 'b.1': {} } })).toThrow(/envelope\.route/);
    expect(bad({ args: [] })).toThrow(/envelope\.args/);
    expect(bad({ sql: 'DROP TABLE t' })).toThrow(/unknown field "sql"/);
    expect(bad({ statement: '' })).toThrow(/envelope\.statement/);
    expect(() => parseEnvelope('x'.repeat(300 * 1024))).toThrow(/more than/);
  });
});
