/**
 * Test support for @twinlog/query: fast-check generators for query texts, noise and twins, for
 * fuzz tests here and differential tests in the read model. Not for production.
 */
export * from './arbitraries.ts';
export * from './conformance.ts';
