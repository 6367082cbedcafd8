/**
 * Walking a client error. Both Kafka clients wrap a broker's answer: in retry wrappers through
 * `cause` (kafkajs also `originalError`), and several at once in `errors`; a classifier looks at
 * every error in the tree.
 */

/** Every error in `e`'s cause/aggregate tree, `e` first (cycles skipped, at most `max`). */
export function errorChain(e: unknown, max = 64): unknown[] {
  const out: unknown[] = [];
  const todo = [e];
  while (todo.length > 0 && out.length < max) {
    const x = todo.shift();
    if (x === undefined || x === null || out.includes(x)) continue;
    out.push(x);
    if (typeof x === 'object') {
      const rec = x as { cause?: unknown; errors?: unknown; originalError?: unknown };
      todo.push(rec.cause, rec.originalError);
      if (Array.isArray(rec.errors)) todo.push(...(rec.errors as unknown[]));
    }
  }
  return out;
}
