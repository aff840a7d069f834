// Time as a dependency: the lease manager and the watch watchdog sleep and
// read the time only through this, so unit tests drive them with a fake clock.

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or early (without throwing) when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const done = (): void => {
        clearTimeout(t);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
    }),
};

/** Exponential backoff with a cap; `attempt` counts from 0. */
export function backoffMs(attempt: number, baseMs = 250, capMs = 5000): number {
  return Math.min(capMs, baseMs * 2 ** Math.min(attempt, 16));
}
