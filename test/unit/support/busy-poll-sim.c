/*
 * Drives native/src/busy_poll.h on a virtual clock, for busy-poll.test.ts:
 * the policy is plain arithmetic on the times it is given, so a scenario can
 * be replayed exactly, which a real thread's timing never allows.
 *
 * stdin: one idle period a line, "<kind> <idle_ns>" (kind 0: the thread last
 * sent to the underlay, 1: it last wrote to the TUN device), in order.
 * stdout: a line each, "<hit> <polled_ns>": whether the work that ended the
 * period found the thread still polling, and how long it polled. Each turn
 * of the polling loop costs 1 us of virtual time, as a poll and a
 * sched_yield() roughly do.
 */
#include <stdio.h>

#include "busy_poll.h"

int main(void) {
  busy_poll_t b = {0};
  int64_t t = BUSY_POLL_PERIOD_NS; /* a clock that has run for a while, as CLOCK_MONOTONIC has */
  int kind;
  long long idle;
  while (scanf("%d %lld", &kind, &idle) == 2) {
    int64_t end = t + idle;
    int polling = 1;
    while (t < end && (polling = busy_poll_keep_polling(&b, kind, t))) t += 1000;
    if (t < end) t = end;
    int64_t polled = busy_poll_work(&b, t, !polling);
    printf("%d %lld\n", polling, (long long)polled);
    t += 5000; /* forwarding the work itself */
  }
  return 0;
}
