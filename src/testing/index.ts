/** `baton-fleet/testing`: tools for testing code built on baton without sleeping. */
export { FakeClock, SkewedClock, settle } from './fake-clock.js';
export { MemoryBackend, MemoryStore } from '../stores/memory/memory-store.js';
