/*
 * Adaptive busy-polling for a forwarding thread, in the manner of KVM's
 * halt polling: when a thread runs out of work it may keep polling, without
 * sleeping, for a short window instead of going straight to poll(-1).
 *
 * Why: a request/response packet (a ping, a DNS query, a TCP ACK) crosses
 * the tunnel as two hops per direction, and every hop that finds its thread
 * asleep pays a wake-up, 30-60 us on the VMs we measured, which is a third
 * of a tunnel round trip there. The host that sent a request usually gets
 * the answer back within a few hundred microseconds; a thread still polling
 * then forwards it without a wake-up.
 *
 * Why adaptive: polling that does not pay off only burns CPU. The window is
 * learned per kind of idle period (after the thread last sent to the
 * underlay, or after it last wrote to the TUN device), from how long those
 * periods actually lasted: a period that ended within MAX_NS grows the
 * window to twice its length, one that outlasted MAX_NS halves it, and below
 * MIN_NS it is zero. So the answering host, whose next packet comes with the
 * next request, does not poll at all; one-way streams do not poll either.
 * On top, a thread polls for at most BUDGET_NS in each second, so polling
 * never costs more than that share of a CPU whatever the traffic does. The
 * caller yields the CPU on each turn of its polling loop, so a poller never
 * keeps a runnable task (the application waiting for that very packet) off
 * the CPU.
 *
 * Everything here is arithmetic on a monotonic clock the caller passes in.
 */
#ifndef WEFT_BUSY_POLL_H
#define WEFT_BUSY_POLL_H

#include <stdint.h>
#include <time.h>

#define BUSY_POLL_MAX_NS 300000LL
#define BUSY_POLL_MIN_NS 10000LL
#define BUSY_POLL_BUDGET_NS 100000000LL /* per second: a tenth of a CPU */
#define BUSY_POLL_PERIOD_NS 1000000000LL

enum { BUSY_AFTER_SEND, BUSY_AFTER_RECEIVE, BUSY_KINDS };

typedef struct {
  int64_t window[BUSY_KINDS];
  int64_t idle_since; /* 0: the thread is working */
  int64_t last_poll;  /* the last turn of polling in this idle period */
  int kind;           /* of the current idle period */
  int64_t period_start, spent;
} busy_poll_t;

static inline int64_t busy_poll_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The thread found no work at `now`, having last done `kind` of work. True: poll once more; false: sleep. */
static inline int busy_poll_keep_polling(busy_poll_t *b, int kind, int64_t now) {
  if (!b->idle_since) {
    b->idle_since = b->last_poll = now;
    b->kind = kind;
  }
  if (now - b->period_start >= BUSY_POLL_PERIOD_NS) {
    b->period_start = now;
    b->spent = 0;
  }
  int64_t polled = now - b->idle_since;
  if (polled >= b->window[b->kind] || b->spent + polled >= BUSY_POLL_BUDGET_NS) return 0;
  b->last_poll = now;
  return 1;
}

/* Whether an idle period is open (only then does busy_poll_work need the clock). */
static inline int busy_poll_idle(const busy_poll_t *b) { return b->idle_since != 0; }

/*
 * Work arrived at `now`, ending the idle period if there was one; `slept`
 * says whether the thread had given up polling. Returns how long it polled.
 */
static inline int64_t busy_poll_work(busy_poll_t *b, int64_t now, int slept) {
  if (!b->idle_since) return 0;
  int64_t idle = now - b->idle_since, w = b->window[b->kind];
  int64_t polled = slept ? b->last_poll - b->idle_since : idle;
  b->spent += polled;
  if (idle <= BUSY_POLL_MAX_NS) {
    int64_t grown = 2 * idle > BUSY_POLL_MIN_NS ? 2 * idle : BUSY_POLL_MIN_NS;
    if (grown > BUSY_POLL_MAX_NS) grown = BUSY_POLL_MAX_NS;
    if (grown > w) b->window[b->kind] = grown;
  } else {
    w /= 2;
    b->window[b->kind] = w < BUSY_POLL_MIN_NS ? 0 : w;
  }
  b->idle_since = 0;
  return polled;
}

#endif
