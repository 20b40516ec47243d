/**
 * HMAC-SHA256 signatures of messages, with key rotation. Every relay holds the same key set: a publisher
 * signs the exact bytes of each message it sends with `current` (headers `baton-kid` and `baton-sig`), and
 * a consumer verifies them with any key it holds, found by the `kid` — before it parses anything. One MAC
 * per message covers every field of every envelope in it, and signing the bytes as sent needs no
 * canonical form. Applications never hold the keys: they write to their database, their relay signs.
 *
 * Rotation without losing a message: (1) add the new key to every node's set, still signing with the old
 * one; (2) once every node has it, make it `current` everywhere; (3) once no message signed with the old
 * key can still be queued or parked, remove the old key.
 *
 * Guarantees: comparison in constant time; an unknown `kid` or a wrong MAC fails with {@link SignatureError};
 * secrets are never logged or put into messages (errors name the key id only).
 * Non-guarantees: the HMAC proves a message came from a holder of the key and was not altered; it does not
 * stop a holder from replaying an old message (the inbox and per-key sequence numbers make a replay a no-op).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ConfigError } from '../core/errors.js';
import { SignatureError } from './errors.js';

/** The AMQP headers that carry a message's signature. */
export const SIGNATURE_HEADERS = { kid: 'baton-kid', sig: 'baton-sig' } as const;

/** A message's signature: the key id and the base64url HMAC-SHA256 of its body. */
export interface MessageSignature {
  readonly kid: string;
  readonly sig: string;
}

export interface SigningKeys {
  /** The id of the key new envelopes are signed with; must be in `keys`. */
  readonly current: string;
  /** Key id → secret (at least 32 bytes; a string is taken as UTF-8). */
  readonly keys: Readonly<Record<string, string | Uint8Array>>;
}

const KID = /^[\w.-]{1,64}$/;
const MIN_SECRET_BYTES = 32;

export class Signer {
  readonly current: string;
  readonly #secrets: ReadonlyMap<string, Buffer>;

  /** @throws ConfigError for a missing current key, a bad key id or a secret shorter than 32 bytes. */
  constructor(keys: SigningKeys) {
    if (typeof keys !== 'object' || keys === null) throw new ConfigError('keys: must be { current, keys: { id: secret } }');
    const secrets = new Map<string, Buffer>();
    for (const [kid, secret] of Object.entries(keys.keys ?? {})) {
      if (!KID.test(kid)) throw new ConfigError(`keys.keys.${kid}: a key id is 1–64 letters, digits, "_", "." or "-"`);
      const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret instanceof Uint8Array ? Buffer.from(secret) : undefined;
      if (!bytes || bytes.length < MIN_SECRET_BYTES) throw new ConfigError(`keys.keys.${kid}: the secret must have at least ${MIN_SECRET_BYTES} bytes`);
      secrets.set(kid, bytes);
    }
    if (typeof keys.current !== 'string' || !secrets.has(keys.current)) {
      throw new ConfigError(`keys.current: must name one of the keys (${[...secrets.keys()].join(', ') || 'none given'}), got ${JSON.stringify(keys.current)}`);
    }
    this.current = keys.current;
    this.#secrets = secrets;
  }

  /** Signs a message body with the current key. */
  sign(body: Buffer): MessageSignature {
    return { kid: this.current, sig: this.#mac(this.current, body).toString('base64url') };
  }

  /**
   * Checks a message body against the key id and signature it came with (its headers, untrusted).
   * @throws SignatureError when either is missing, the key id is unknown or the MAC does not match.
   */
  verify(body: Buffer, kid: unknown, sig: unknown): void {
    if (typeof kid !== 'string' || typeof sig !== 'string') throw new SignatureError(`message: not signed (no ${SIGNATURE_HEADERS.kid} and ${SIGNATURE_HEADERS.sig} headers)`);
    if (!this.#secrets.has(kid)) throw new SignatureError(`message: signed with key ${JSON.stringify(kid.slice(0, 64))}, which this relay does not hold`);
    const expected = this.#mac(kid, body);
    const given = Buffer.from(sig, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new SignatureError(`message: signature does not match (key "${kid}")`);
    }
  }

  #mac(kid: string, body: Buffer): Buffer {
    return createHmac('sha256', this.#secrets.get(kid) as Buffer)
      .update(body)
      .digest();
  }
}

/**
 * Reads a key set from text such as an environment variable: `k2=secret2,k1=secret1` — the first key is
 * current. @throws ConfigError (the message never contains a secret).
 */
export function parseSigningKeys(text: string, field = 'BATON_RELAY_KEYS'): SigningKeys {
  const keys: Record<string, string> = {};
  let current: string | undefined;
  for (const [i, part] of text.split(',').entries()) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new ConfigError(`${field}: entry ${i + 1} must be id=secret`);
    const kid = part.slice(0, eq).trim();
    keys[kid] = part.slice(eq + 1);
    current ??= kid;
  }
  if (current === undefined) throw new ConfigError(`${field}: no key given`);
  return { current, keys };
}
