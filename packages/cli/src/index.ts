/** @twinlog/cli: the twinlog command line. */
export {};
