// Runs one pass at a time and coalesces requests that arrive meanwhile.
// Reconcile passes must never overlap (two passes diffing the same kernel
// state would both add, or one would delete what the other just made), and
// a burst of lease events should cost one extra pass, not one per event:
// every call made while a pass runs waits for the single pass that follows,
// which runs with the newest arguments.

interface Waiter<R> {
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

export class Coalescer<A, R> {
  private next: { args: A; waiters: Waiter<R>[] } | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly pass: (args: A) => Promise<R>) {}

  /** Resolves with the result of the first pass that starts after this call. */
  run(args: A): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      if (this.next) {
        this.next.args = args;
        this.next.waiters.push({ resolve, reject });
      } else {
        this.next = { args, waiters: [{ resolve, reject }] };
      }
      this.running ??= this.drain();
    });
  }

  /** Resolves once no pass is running or queued. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    // Bounded: each iteration consumes the queued batch; it ends once callers stop calling.
    while (this.next) {
      const { args, waiters } = this.next;
      this.next = undefined;
      try {
        const r = await this.pass(args);
        for (const w of waiters) w.resolve(r);
      } catch (e) {
        for (const w of waiters) w.reject(e);
      }
    }
    this.running = undefined;
  }
}
