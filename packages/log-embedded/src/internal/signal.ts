/** A promise that `notify()` resolves and replaces, to wake every waiter at once. */
export class Signal {
  private resolve!: () => void;
  private promise!: Promise<void>;

  constructor() {
    this.reset();
  }

  private reset(): void {
    this.promise = new Promise<void>((r) => {
      this.resolve = r;
    });
  }

  /** Resolves on the next `notify()`. */
  wait(): Promise<void> {
    return this.promise;
  }

  notify(): void {
    const resolve = this.resolve;
    this.reset();
    resolve();
  }
}
