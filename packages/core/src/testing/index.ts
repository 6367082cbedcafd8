/**
 * Test support for twinlog packages: generators, the sequential oracle, the in-memory `Log` and the
 * `Log` acceptance suite every adapter runs. Not for production.
 */
export * from './arbitraries.ts';
export * from './sequentialOracle.ts';
export * from './inMemoryLog.ts';
export * from './runLogAcceptanceSuite.ts';
export * from './seededRandom.ts';
