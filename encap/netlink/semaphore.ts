// A counting semaphore: caps how many netlink requests are in flight on one
// socket. Every request's reply (and a dump's many) lands in the socket's
// receive buffer; an unbounded burst overflows it, the kernel drops replies
// (ENOBUFS) and callers would wait forever, so bursts queue here instead.

export class Semaphore {
  private active = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`semaphore size must be a positive integer, got ${max}`);
  }

  get inUse(): number {
    return this.active;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  acquire(): Promise<void> {
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Hands the slot straight to the next waiter (FIFO), so order is kept. */
  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else if (this.active > 0) this.active--;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}
