import { randomBytes } from 'node:crypto';

/** A short random id (base36), for sessions and node ids. */
export function randomId(bytes = 8): string {
  return BigInt(`0x${randomBytes(bytes).toString('hex')}`).toString(36);
}
