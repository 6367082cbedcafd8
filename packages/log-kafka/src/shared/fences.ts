/**
 * The fences of one `Log` instance, the same for every Kafka client: one transaction at a time per
 * fence (one transactional producer each), and a fence a newer writer took stays lost to the
 * instance (as a fenced Kafka producer is; only a new instance can claim it again).
 */
import { fencedError } from './checks.ts';
import { KeyedMutex } from './KeyedMutex.ts';

export interface FailedTransaction {
  /** Whether the error says a newer producer with the same transactional id took over. */
  readonly isFenced: (error: unknown) => boolean;
  /** Aborts the open transaction; absent when there is none to abort (or aborting cannot help). */
  readonly abort: (() => Promise<unknown>) | undefined;
  /** Drops the fence's producer (the next transaction creates a new one). */
  readonly drop: () => Promise<void>;
  /** The producer is unusable whatever the abort does (its sequence state is lost): drop it. */
  readonly unusable?: boolean;
}

export class Fences {
  readonly #mutex = new KeyedMutex();
  readonly #lost = new Set<string>();

  /** Runs `task` after every earlier task of `fence` has settled; resolves or rejects as it does. */
  run<T>(fence: string, task: () => Promise<T>): Promise<T> {
    return this.#mutex.run(fence, task);
  }

  /** @throws TwinlogError `LOG_FENCED` when a newer writer took `fence` from this instance. */
  assertHeld(fence: string): void {
    if (this.#lost.has(fence)) throw fencedError(fence);
  }

  /**
   * Ends a transaction of `fence` that failed with `error`: aborts what can be aborted, drops the
   * producer unless its transaction was aborted cleanly and it was neither fenced nor `unusable`, and rethrows; a
   * fenced writer loses the fence for good and gets `LOG_FENCED`.
   */
  async fail(
    fence: string,
    error: unknown,
    { isFenced, abort, drop, unusable = false }: FailedTransaction,
  ): Promise<never> {
    let reusable = false;
    if (abort !== undefined) {
      try {
        await abort();
        reusable = true;
      } catch {
        // fenced, or the coordinator is gone: dropped below
      }
    }
    const fenced = isFenced(error);
    if (fenced || !reusable || unusable) await drop();
    if (fenced) {
      this.#lost.add(fence);
      throw fencedError(fence, error);
    }
    throw error;
  }
}
