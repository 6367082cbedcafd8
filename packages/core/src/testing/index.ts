/** Test support for twinlog packages: generators and the sequential oracle. Not for production. */
export * from './arbitraries.ts';
export * from './sequentialOracle.ts';
