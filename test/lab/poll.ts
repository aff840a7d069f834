// Polling for tests: probe until a condition holds or the time is up, and
// hand back the last probe, so the test asserts on what it actually saw (a
// time-out then fails on the assertion, naming the state, not on a timer).

export async function pollUntil<T>(probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await probe();
  while (!done(value) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, intervalMs));
    value = await probe();
  }
  return value;
}
