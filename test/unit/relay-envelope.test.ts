import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { encodeBundle, encodeEnvelope, newChangeId, parseEnvelope, parseMessage, timeOfChangeId, type Envelope } from '../../src/relay/envelope.js';
import { EnvelopeError, SignatureError } from '../../src/relay/errors.js';
import { parseSigningKeys, Signer } from '../../src/relay/signature.js';

const K1 = 'k1-secret-0123456789abcdefghijklmnop';
const K2 = 'k2-secret-0123456789abcdefghijklmnop';

function base(clock = new FakeClock(1_700_000_000_000)): Envelope {
  return {
    v: 2,
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

  it('round-trips a bundle through the wire format, in order, and verifies its bytes', () => {
    const signer = new Signer({ current: 'k1', keys: { k1: K1 } });
    const clock = new FakeClock(1_700_000_000_000);
    const envelopes = [base(clock), { ...base(clock), seq: 4 }, { ...base(clock), seq: 5, skip: 'parked at b1: test' }];
    const body = Buffer.from(encodeBundle(envelopes));
    expect(parseMessage(body)).toEqual(envelopes);
    const { kid, sig } = signer.sign(body);
    expect(kid).toBe('k1');
    expect(() => signer.verify(body, kid, sig)).not.toThrow();
    expect(parseEnvelope(encodeEnvelope(envelopes[0]!))).toEqual(envelopes[0]);
  });

  it('signs the exact bytes: any change to them fails, a missing signature fails', () => {
    const signer = new Signer({ current: 'k1', keys: { k1: K1 } });
    const body = Buffer.from(encodeBundle([base()]));
    const { kid, sig } = signer.sign(body);
    const tampered = [
      encodeBundle([{ ...base(), args: { k: 'sku-1', n: 3 } }]),
      encodeBundle([{ ...base(), visited: ['a1', 'b1'] }]),
      encodeBundle([{ ...base(), route: { b1: {} } }]),
      encodeBundle([base(), base()]),
      `${body.toString()} `,
    ];
    for (const text of tampered) expect(() => signer.verify(Buffer.from(text), kid, sig)).toThrow(SignatureError);
    expect(() => signer.verify(body, undefined, sig)).toThrow(/not signed/);
    expect(() => signer.verify(body, kid, undefined)).toThrow(/not signed/);
    expect(() => signer.verify(body, kid, 42)).toThrow(/not signed/);
    expect(() => signer.verify(body, kid, `${sig.slice(0, -2)}AA`)).toThrow(/signature does not match/);
  });

  it('rotates keys: old messages verify while the old key is held, new ones use the current key', () => {
    const before = new Signer({ current: 'k1', keys: { k1: K1 } });
    const during = new Signer({ current: 'k2', keys: { k1: K1, k2: K2 } });
    const after = new Signer({ current: 'k2', keys: { k2: K2 } });
    const body = Buffer.from(encodeBundle([base()]));
    const old = before.sign(body);
    const fresh = during.sign(body);
    expect(fresh.kid).toBe('k2');
    expect(() => during.verify(body, old.kid, old.sig)).not.toThrow();
    expect(() => after.verify(body, fresh.kid, fresh.sig)).not.toThrow();
    expect(() => after.verify(body, old.kid, old.sig)).toThrow(/signed with key "k1", which this relay does not hold/);
    expect(() => before.verify(body, fresh.kid, fresh.sig)).toThrow(SignatureError);
    // A key id that exists with another secret does not verify.
    const impostor = new Signer({ current: 'k1', keys: { k1: 'another-secret-0123456789abcdefghijkl' } });
    const forged = impostor.sign(body);
    expect(() => before.verify(body, forged.kid, forged.sig)).toThrow(/signature does not match/);
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
    const good = base() as unknown as Record<string, unknown>;
    const bad = (patch: Record<string, unknown>) => () => parseEnvelope(JSON.stringify({ ...good, ...patch }));
    expect(() => parseEnvelope('not json')).toThrow(EnvelopeError);
    expect(bad({ v: 1 })).toThrow(/envelope\.v: version 1/);
    expect(bad({ kid: 'k1' })).toThrow(/unknown field "kid"/);
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

  it('refuses malformed bundles, naming the envelope and field', () => {
    expect(() => parseMessage(encodeEnvelope(base()))).toThrow(/message: not a JSON array/);
    expect(() => parseMessage('[]')).toThrow(/a bundle holds 1 to/);
    expect(() => parseMessage('[1')).toThrow(/message: not JSON/);
    expect(() => parseMessage(encodeBundle([base(), { ...base(), seq: 0 }]))).toThrow(/message\[1\]\.seq: must be a positive integer/);
    expect(() => parseMessage(`[${'"x",'.repeat(10_000)}"x"]`)).toThrow(/a bundle holds 1 to 10000 envelopes, this one 10001/);
  });
});
