/**
 * A partition stage under the supervisor (`superviseOnNode`): what the projector and the
 * reconciler share. Each failure of a run ends it and, after a backoff, a new stage is started and
 * handed to `onStage`, so the caller always works on the current one. With `restart: false` the
 * first stage is the only one (crash-only: `done` rejects with its failure).
 */
import type { BackoffOptions, StageHealth, StageState } from '@twinlog/core';
import type { PartitionStage } from './startPartitionStage.ts';
import { superviseOnNode } from './superviseOnNode.ts';

export interface PartitionStageSupervision {
  /** Settles when the stage stops: after `stop()`, or (crash-only) rejecting with its failure. */
  readonly done: Promise<void>;
  health(): StageHealth;
  stop(): Promise<void>;
}

export function supervisePartitionStage<T>(
  first: PartitionStage<T>,
  startStage: () => Promise<PartitionStage<T>>,
  onStage: (stage: PartitionStage<T>) => void,
  {
    name,
    restart,
    onStateChange,
  }: {
    name: string;
    restart: BackoffOptions | false;
    onStateChange: ((health: StageHealth, previous: StageState) => void) | undefined;
  },
): PartitionStageSupervision {
  if (restart === false) {
    return {
      done: first.done,
      health: () => ({
        stage: name,
        state: first.failed ? 'stopped' : 'consuming',
        reason: undefined,
        since: 0,
        partitions: first.status().partitions,
        restarts: 0,
      }),
      stop: () => first.stop(),
    };
  }
  let stopped: () => void = () => {};
  const done = new Promise<void>((r) => (stopped = r));
  let pending: PartitionStage<T> | undefined = first;
  const supervisor = superviseOnNode({
    name,
    ...restart,
    start: async () => {
      const next = pending ?? (await startStage());
      pending = undefined;
      onStage(next);
      return { ended: next.done, stop: () => next.stop(), status: () => next.status() };
    },
    ...(onStateChange === undefined ? {} : { onChange: onStateChange }),
  });
  return {
    done,
    health: () => supervisor.health(),
    async stop() {
      await supervisor.stop();
      stopped();
    },
  };
}
