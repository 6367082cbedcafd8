/**
 * kafkajs heartbeats only between batches, so a long `eachBatch` (or a long `onAssign` the batch
 * waits for) would let the session time out and the member be thrown out of the group. This keeps
 * the heartbeat going while `work` runs. Heartbeat failures (a rebalance in progress) are left for
 * kafkajs's own heartbeat after the batch, which rejoins the group.
 */
export async function withHeartbeat<T>(
  heartbeat: () => Promise<void>,
  intervalMs: number,
  work: () => Promise<T>,
): Promise<T> {
  const timer = setInterval(() => {
    heartbeat().catch(() => {});
  }, intervalMs);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}
