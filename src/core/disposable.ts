/**
 * `Symbol.asyncDispose`, so that `await using lock = await cluster.lock('x')` works on every Node 20.
 * Node defines it from 20.4 on (as a polyfill of its own, until V8 ships it); on an older 20.x this module
 * defines it once, with the registered symbol Node itself uses, and never replaces an existing one.
 */
const symbols = Symbol as unknown as { asyncDispose?: symbol };
if (typeof symbols.asyncDispose !== 'symbol') {
  Object.defineProperty(Symbol, 'asyncDispose', { value: Symbol.for('nodejs.asyncDispose'), configurable: false, writable: false });
}

/** The symbol `await using` calls on scope exit. */
export const asyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose;
