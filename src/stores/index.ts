/** `baton-fleet/stores`: the Store contract, the URL opener and the built-in stores. */
export type * from './contract.js';
export { openStore, parseStoreUrl, redactStoreUrl, type OpenStoreOptions, type ParsedStoreUrl } from './open-store.js';
export { MemoryBackend, MemoryStore } from './memory/memory-store.js';
export type { SqliteStoreOptions } from './sqlite/sqlite-store.js';
