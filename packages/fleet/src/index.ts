/** @twinlog/fleet: the SQLite read model fed by twin.snapshots, jobs and automatic configurations. */
export {};
