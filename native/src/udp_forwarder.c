/*
 * The udp backend's data path: TUN <-> UDP on threads of its own, so no
 * packet ever passes through the Node event loop or the libuv thread pool.
 *
 * One worker thread per TUN queue (one by default); worker 0 also owns the
 * UDP socket. Each takes whatever is ready, sleeping in poll() only when
 * both sides are empty and a short learned polling window has passed (see
 * worker_main and busy_poll.h):
 *   send:    read() packets until EAGAIN (a batch) -> look the destination
 *       up in the peer table (subnet -> IP:port) -> seal (optional) -> one
 *       sendmmsg() for the batch, runs of datagrams to one peer as one UDP
 *       GSO message (UDP_SEGMENT)
 *   receive: recvmmsg() a batch (UDP_GRO on, so one buffer may hold a run
 *       of datagrams) -> sender must be a peer, inner source inside that
 *       peer's subnet, destination inside ours -> open (optional, with a
 *       replay window) -> write() to the TUN device
 *
 * Control stays in TypeScript (encap/udp/): it opens the TUN queues, computes
 * the peer table and the per-peer-direction keys (HKDF), and pushes them here
 * as one buffer; this file only forwards, drops and counts. The table is
 * swapped under a rwlock (readers hold it per batch); replay windows are
 * carried over to the new table by peer IP, so pushing a table never opens a
 * replay hole.
 *
 * Wire format. Plain: the datagram is the IP packet itself (flannel's udp
 * format). Sealed (ChaCha20-Poly1305, OpenSSL's EVP from the Node process
 * that loads us, so no extra library):
 *   0xA1 | key id u32 | epoch u32 | counter u64 | ciphertext | tag[16]
 * the 17-byte header is the AAD and its last 12 bytes the nonce. Each key is
 * one direction between two hosts, so (epoch, counter) only has to be unique
 * per sender: the counter is one atomic per process and the epoch is given by
 * TypeScript, which persists it and makes it grow on every start (see
 * encap/udp/epoch.ts). The receiver keeps, per peer, the newest epoch and a
 * 2048-bit window of counters below the highest seen; a datagram is only
 * counted in the window after its tag verified, so forged datagrams cannot
 * move the window; only worker 0 receives, so the windows need no lock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <node_api.h>
#include <openssl/evp.h>

#include "busy_poll.h"
#include "napi_errors.h"
#include "udp_forwarder.h"

#define BATCH 64
#define MAX_PKT 65535
#define MAX_QUEUES 8
#define SEAL_TYPE 0xA1
#define SEAL_HDR 17
#define SEAL_TAG 16
#define WINDOW_BITS 2048
#define WINDOW_WORDS (WINDOW_BITS / 64)
#define KEY_LEN 32
#define MAX_KEYS 8
/* UDP GSO: at most this many datagrams in one send, and 64 KiB in all. */
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000

typedef struct {
  uint32_t id;
  uint8_t tx[KEY_LEN];
  uint8_t rx[KEY_LEN];
} peer_key_t;

typedef struct {
  uint32_t epoch;
  uint64_t top; /* highest counter accepted in this epoch */
  int seen;     /* any datagram accepted yet */
  uint64_t bits[WINDOW_WORDS];
} replay_t;

typedef struct {
  uint32_t subnet; /* host order */
  uint32_t mask;
  uint32_t ip; /* host order */
  uint16_t port;
  int nkeys;
  peer_key_t keys[MAX_KEYS];
  replay_t replay; /* touched only by worker 0, the one that receives */
  struct sockaddr_in addr;
} peer_t;

typedef struct {
  uint32_t local, local_mask; /* this host's subnet: the only destination a received packet may have */
  int n;
  peer_t *by_subnet; /* sorted by subnet; subnets are disjoint (the planner ensures it) */
  int *by_ip;        /* indexes into by_subnet, sorted by ip */
} table_t;

enum {
  C_TX_PACKETS, C_TX_BYTES, C_RX_PACKETS, C_RX_BYTES,
  C_DROP_NO_ROUTE, C_DROP_NOT_IPV4, C_DROP_UNKNOWN_PEER, C_DROP_BAD_SOURCE, C_DROP_MALFORMED,
  C_DROP_UNKNOWN_KEY, C_DROP_AUTH, C_DROP_REPLAY, C_DROP_SEND_ERR, C_DROP_TUN_WRITE, C_DROP_NOT_SEALED, C_DROP_BAD_DEST,
  C_BUSY_POLL_HITS, C_BUSY_POLL_MICROS,
  C_COUNT
};
static const char *counter_names[C_COUNT] = {
    "txPackets", "txBytes", "rxPackets", "rxBytes",
    "dropNoRoute", "dropNotIpv4", "dropUnknownPeer", "dropBadSource", "dropMalformed",
    "dropUnknownKey", "dropAuth", "dropReplay", "dropSendError", "dropTunWrite", "dropNotSealed", "dropBadDestination",
    "busyPollHits", "busyPollMicros",
};

typedef struct fwd fwd_t;

typedef struct {
  fwd_t *f;
  int queue;
  pthread_t th;
} txarg_t;

struct fwd {
  int sock;
  int stopfd;
  int nq;
  int tun[MAX_QUEUES];
  int sealed;
  uint32_t epoch;
  atomic_uint_fast64_t counter;
  pthread_rwlock_t lock;
  table_t *table;
  atomic_uint_fast64_t c[C_COUNT];
  txarg_t tx[MAX_QUEUES];
  atomic_int gso; /* UDP_SEGMENT works here (cleared on the first refusal) */
  int gro;        /* UDP_GRO is on: a receive may hold several datagrams */
  int started;    /* threads running */
  int closed;
};

static inline void count(fwd_t *f, int which, uint64_t n) { atomic_fetch_add_explicit(&f->c[which], n, memory_order_relaxed); }

static void table_free(table_t *t) {
  if (!t) return;
  free(t->by_subnet);
  free(t->by_ip);
  free(t);
}

static peer_t *lookup_subnet(table_t *t, uint32_t dst) {
  int lo = 0, hi = t->n - 1, best = -1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (t->by_subnet[mid].subnet <= dst) {
      best = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  if (best < 0) return NULL;
  peer_t *p = &t->by_subnet[best];
  return (dst & p->mask) == p->subnet ? p : NULL;
}

static peer_t *lookup_ip(table_t *t, uint32_t ip) {
  int lo = 0, hi = t->n - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    peer_t *p = &t->by_subnet[t->by_ip[mid]];
    if (p->ip == ip) return p;
    if (p->ip < ip) lo = mid + 1;
    else hi = mid - 1;
  }
  return NULL;
}

/* ---- replay window ------------------------------------------------------ */

/* 1 when (epoch, ctr) may be new; does not record it. */
static int replay_check(const replay_t *r, uint32_t epoch, uint64_t ctr) {
  if (!r->seen || epoch > r->epoch) return 1;
  if (epoch < r->epoch) return 0;
  if (ctr > r->top) return 1;
  uint64_t back = r->top - ctr;
  if (back >= WINDOW_BITS) return 0;
  uint64_t bit = ctr % WINDOW_BITS;
  return !(r->bits[bit / 64] & (1ULL << (bit % 64)));
}

static void replay_mark(replay_t *r, uint32_t epoch, uint64_t ctr) {
  if (!r->seen || epoch > r->epoch) {
    memset(r->bits, 0, sizeof r->bits);
    r->seen = 1;
    r->epoch = epoch;
    r->top = ctr;
  } else if (ctr > r->top) {
    uint64_t shift = ctr - r->top;
    if (shift >= WINDOW_BITS) {
      memset(r->bits, 0, sizeof r->bits);
    } else {
      for (uint64_t i = r->top + 1; i <= ctr; i++) {
        uint64_t b = i % WINDOW_BITS;
        r->bits[b / 64] &= ~(1ULL << (b % 64));
      }
    }
    r->top = ctr;
  }
  uint64_t bit = ctr % WINDOW_BITS;
  r->bits[bit / 64] |= 1ULL << (bit % 64);
}

/* ---- sealing ------------------------------------------------------------ */

static inline void put32(uint8_t *p, uint32_t v) { uint32_t n = htonl(v); memcpy(p, &n, 4); }
static inline uint32_t get32(const uint8_t *p) { uint32_t n; memcpy(&n, p, 4); return ntohl(n); }
static inline void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)(v >> 32)); put32(p + 4, (uint32_t)v); }
static inline uint64_t get64(const uint8_t *p) { return ((uint64_t)get32(p) << 32) | get32(p + 4); }

/* out gets SEAL_HDR + len + SEAL_TAG bytes; returns that length or -1. */
static int seal(EVP_CIPHER_CTX *ctx, const peer_key_t *k, uint32_t epoch, uint64_t ctr, const uint8_t *in, int len, uint8_t *out) {
  int n = 0, fin = 0;
  out[0] = SEAL_TYPE;
  put32(out + 1, k->id);
  put32(out + 5, epoch);
  put64(out + 9, ctr);
  if (EVP_EncryptInit_ex(ctx, NULL, NULL, k->tx, out + 5) != 1) return -1;
  if (EVP_EncryptUpdate(ctx, NULL, &n, out, SEAL_HDR) != 1) return -1;
  if (EVP_EncryptUpdate(ctx, out + SEAL_HDR, &n, in, len) != 1) return -1;
  if (EVP_EncryptFinal_ex(ctx, out + SEAL_HDR + n, &fin) != 1) return -1;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, SEAL_TAG, out + SEAL_HDR + len) != 1) return -1;
  return SEAL_HDR + len + SEAL_TAG;
}

/* Plaintext length, or -1 when the tag does not verify. */
static int open_sealed(EVP_CIPHER_CTX *ctx, const uint8_t *key, const uint8_t *in, int len, uint8_t *out) {
  int n = 0, fin = 0, clen = len - SEAL_HDR - SEAL_TAG;
  if (EVP_DecryptInit_ex(ctx, NULL, NULL, key, in + 5) != 1) return -1;
  if (EVP_DecryptUpdate(ctx, NULL, &n, in, SEAL_HDR) != 1) return -1;
  if (EVP_DecryptUpdate(ctx, out, &n, in + SEAL_HDR, clen) != 1) return -1;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, SEAL_TAG, (void *)(in + SEAL_HDR + clen)) != 1) return -1;
  if (EVP_DecryptFinal_ex(ctx, out + n, &fin) != 1) return -1;
  return clen;
}

static EVP_CIPHER_CTX *new_ctx(int enc) {
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (!ctx) return NULL;
  if (EVP_CipherInit_ex(ctx, EVP_chacha20_poly1305(), NULL, NULL, NULL, enc) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

/* ---- workers ------------------------------------------------------------ */

/* A worker's sending side: buffers for one batch read from a TUN queue. */
typedef struct {
  uint8_t *in, *out;
  int lens[BATCH], segs[BATCH];
  size_t bytes[BATCH];
  peer_t *to[BATCH];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  char ctrl[BATCH][CMSG_SPACE(sizeof(uint16_t))];
  EVP_CIPHER_CTX *ctx;
} tx_state_t;

static void tx_state_free(tx_state_t *s) {
  if (!s) return;
  free(s->in);
  free(s->out);
  if (s->ctx) EVP_CIPHER_CTX_free(s->ctx);
  free(s);
}

static tx_state_t *tx_state_new(fwd_t *f) {
  tx_state_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->in = malloc((size_t)BATCH * MAX_PKT);
  s->out = f->sealed ? malloc((size_t)BATCH * (MAX_PKT + SEAL_HDR + SEAL_TAG)) : NULL;
  s->ctx = f->sealed ? new_ctx(1) : NULL;
  if (!s->in || (f->sealed && (!s->out || !s->ctx))) {
    tx_state_free(s);
    return NULL;
  }
  return s;
}

/* Reads what the TUN queue holds (up to a batch), seals and sends it; returns the packets read. */
static int tx_batch(fwd_t *f, tx_state_t *s, int tun) {
  uint8_t *in = s->in, *out = s->out;
  int *lens = s->lens, *segs = s->segs;
  size_t *bytes = s->bytes;
  peer_t **to = s->to;
  struct mmsghdr *msgs = s->msgs;
  struct iovec *iov = s->iov;
  EVP_CIPHER_CTX *ctx = s->ctx;
  int n = 0;
  while (n < BATCH) {
    ssize_t r = read(tun, in + (size_t)n * MAX_PKT, MAX_PKT);
    if (r < 0) {
      if (errno == EINTR) continue;
      break; /* EAGAIN: the batch is what we have */
    }
    lens[n++] = (int)r;
  }
  if (n == 0) return 0;
  {
    int m = 0;
    uint64_t ctr = 0;
    if (f->sealed) ctr = atomic_fetch_add(&f->counter, (uint64_t)n);
    pthread_rwlock_rdlock(&f->lock);
    table_t *t = f->table;
    for (int i = 0; i < n; i++) {
      uint8_t *pkt = in + (size_t)i * MAX_PKT;
      if (lens[i] < 20 || (pkt[0] >> 4) != 4) {
        count(f, C_DROP_NOT_IPV4, 1);
        continue;
      }
      uint32_t dst = get32(pkt + 16);
      peer_t *p = t ? lookup_subnet(t, dst) : NULL;
      if (!p) {
        count(f, C_DROP_NO_ROUTE, 1);
        continue;
      }
      if (f->sealed) {
        if (p->nkeys == 0) {
          count(f, C_DROP_UNKNOWN_KEY, 1);
          continue;
        }
        uint8_t *o = out + (size_t)m * (MAX_PKT + SEAL_HDR + SEAL_TAG);
        int sl = seal(ctx, &p->keys[0], f->epoch, ctr + (uint64_t)i, pkt, lens[i], o);
        if (sl < 0) {
          count(f, C_DROP_SEND_ERR, 1);
          continue;
        }
        iov[m].iov_base = o;
        iov[m].iov_len = (size_t)sl;
      } else {
        iov[m].iov_base = pkt;
        iov[m].iov_len = (size_t)lens[i];
      }
      to[m] = p;
      m++;
    }
    /*
     * Runs of datagrams to one peer, all of one size but the last (which may
     * be shorter), leave in one message with UDP_SEGMENT: the kernel cuts
     * them apart at the last moment (or the receiver's GRO never has to), so
     * the UDP/IP path runs once per run instead of once per datagram. The
     * wire sees exactly the same datagrams.
     */
    int nm = 0, gso = atomic_load(&f->gso);
    for (int k = 0; k < m;) {
      size_t seg = iov[k].iov_len, total = seg;
      int j = k + 1;
      while (gso && j < m && j - k < GSO_MAX_SEGS && to[j] == to[k] && iov[j - 1].iov_len == seg && iov[j].iov_len <= seg &&
             total + iov[j].iov_len <= GSO_MAX_BYTES) {
        total += iov[j].iov_len;
        j++;
      }
      struct msghdr *h = &msgs[nm].msg_hdr;
      memset(h, 0, sizeof *h);
      h->msg_name = &to[k]->addr; /* copied by the kernel in sendmmsg, under our read lock */
      h->msg_namelen = sizeof to[k]->addr;
      h->msg_iov = &iov[k];
      h->msg_iovlen = (size_t)(j - k);
      if (j - k > 1) {
        memset(s->ctrl[nm], 0, sizeof s->ctrl[nm]);
        h->msg_control = s->ctrl[nm];
        h->msg_controllen = sizeof s->ctrl[nm];
        struct cmsghdr *c = CMSG_FIRSTHDR(h);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t gs = (uint16_t)seg;
        memcpy(CMSG_DATA(c), &gs, sizeof gs);
      }
      segs[nm] = j - k;
      bytes[nm] = total;
      nm++;
      k = j;
    }
    int sent = 0;
    while (sent < nm) {
      int r = sendmmsg(f->sock, msgs + sent, (unsigned)(nm - sent), 0);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == ENOBUFS) {
          struct pollfd p = {.fd = f->sock, .events = POLLOUT};
          poll(&p, 1, 10);
          continue;
        }
        /* A kernel or device without UDP GSO refuses it: send single datagrams from now on. */
        if (segs[sent] > 1 && (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP)) atomic_store(&f->gso, 0);
        /* One bad destination (EMSGSIZE, unreachable): skip it, keep the rest. */
        count(f, C_DROP_SEND_ERR, (uint64_t)segs[sent]);
        sent++;
        continue;
      }
      for (int i = sent; i < sent + r; i++) {
        count(f, C_TX_PACKETS, (uint64_t)segs[i]);
        count(f, C_TX_BYTES, bytes[i]);
      }
      sent += r;
    }
    pthread_rwlock_unlock(&f->lock);
  }
  return n;
}

/*
 * Checks the plain IPv4 packet against its sender and this host; returns 1
 * when it may go to the TUN. The destination check keeps a peer from using
 * this host as a relay to anywhere else.
 */
static int inner_ok(fwd_t *f, const table_t *t, const peer_t *p, const uint8_t *pkt, int len) {
  if (len < 20 || (pkt[0] >> 4) != 4 || (pkt[0] & 0x0f) < 5) {
    count(f, C_DROP_MALFORMED, 1);
    return 0;
  }
  uint32_t src = get32(pkt + 12);
  if ((src & p->mask) != p->subnet) {
    count(f, C_DROP_BAD_SOURCE, 1);
    return 0;
  }
  if ((get32(pkt + 16) & t->local_mask) != t->local) {
    count(f, C_DROP_BAD_DEST, 1);
    return 0;
  }
  return 1;
}

/* One datagram from `from`: checked, opened, written to the TUN device, or dropped and counted. */
static void rx_one(fwd_t *f, EVP_CIPHER_CTX *ctx, const table_t *t, peer_t *p, uint8_t *d, int len, uint8_t *plain, int tun) {
  const uint8_t *pkt = d;
  int plen = len;
  if (f->sealed) {
    if (len < SEAL_HDR + SEAL_TAG + 20 || d[0] != SEAL_TYPE) {
      count(f, len > 0 && d[0] >> 4 == 4 ? C_DROP_NOT_SEALED : C_DROP_MALFORMED, 1);
      return;
    }
    uint32_t id = get32(d + 1), epoch = get32(d + 5);
    uint64_t ctr = get64(d + 9);
    const peer_key_t *k = NULL;
    for (int j = 0; j < p->nkeys; j++)
      if (p->keys[j].id == id) k = &p->keys[j];
    if (!k) {
      count(f, C_DROP_UNKNOWN_KEY, 1);
      return;
    }
    if (!replay_check(&p->replay, epoch, ctr)) {
      count(f, C_DROP_REPLAY, 1);
      return;
    }
    plen = open_sealed(ctx, k->rx, d, len, plain);
    if (plen < 0) {
      count(f, C_DROP_AUTH, 1);
      return;
    }
    pkt = plain;
    if (!inner_ok(f, t, p, pkt, plen)) return;
    replay_mark(&p->replay, epoch, ctr);
  } else {
    if (len > 0 && d[0] == SEAL_TYPE) {
      count(f, C_DROP_MALFORMED, 1);
      return;
    }
    if (!inner_ok(f, t, p, pkt, plen)) return;
  }
  ssize_t w;
  do {
    w = write(tun, pkt, (size_t)plen);
  } while (w < 0 && errno == EINTR);
  if (w < 0) {
    count(f, C_DROP_TUN_WRITE, 1);
    return;
  }
  count(f, C_RX_PACKETS, 1);
  count(f, C_RX_BYTES, (uint64_t)plen);
}

/* A worker's receiving side: buffers for one recvmmsg batch. With UDP_GRO one receive holds up to 64 KiB of datagrams from one sender. */
typedef struct {
  uint8_t *in, *plain;
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_in from[BATCH];
  char ctrl[BATCH][CMSG_SPACE(sizeof(int))];
  EVP_CIPHER_CTX *ctx;
} rx_state_t;

#define RX_SLOT (MAX_PKT + SEAL_HDR + SEAL_TAG)

static void rx_state_free(rx_state_t *s) {
  if (!s) return;
  free(s->in);
  free(s->plain);
  if (s->ctx) EVP_CIPHER_CTX_free(s->ctx);
  free(s);
}

static rx_state_t *rx_state_new(fwd_t *f) {
  rx_state_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->in = malloc((size_t)BATCH * RX_SLOT);
  s->plain = malloc(MAX_PKT);
  s->ctx = f->sealed ? new_ctx(0) : NULL;
  if (!s->in || !s->plain || (f->sealed && !s->ctx)) {
    rx_state_free(s);
    return NULL;
  }
  return s;
}

/* Takes what the socket holds (up to a batch) and forwards it to the TUN device; returns the messages taken. */
static int rx_batch(fwd_t *f, rx_state_t *s) {
  int tun = f->tun[0];
  for (int i = 0; i < BATCH; i++) {
    s->iov[i].iov_base = s->in + (size_t)i * RX_SLOT;
    s->iov[i].iov_len = RX_SLOT;
    struct msghdr *h = &s->msgs[i].msg_hdr;
    memset(h, 0, sizeof *h);
    h->msg_name = &s->from[i];
    h->msg_namelen = sizeof s->from[i];
    h->msg_iov = &s->iov[i];
    h->msg_iovlen = 1;
    if (f->gro) {
      h->msg_control = s->ctrl[i];
      h->msg_controllen = sizeof s->ctrl[i];
    }
  }
  int n;
  do {
    n = recvmmsg(f->sock, s->msgs, BATCH, MSG_DONTWAIT, NULL);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return 0;
  pthread_rwlock_rdlock(&f->lock);
  table_t *t = f->table;
  for (int i = 0; i < n; i++) {
    uint8_t *d = s->iov[i].iov_base;
    int len = (int)s->msgs[i].msg_len;
    int seg = len;
    for (struct cmsghdr *c = f->gro ? CMSG_FIRSTHDR(&s->msgs[i].msg_hdr) : NULL; c; c = CMSG_NXTHDR(&s->msgs[i].msg_hdr, c)) {
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        int gs;
        memcpy(&gs, CMSG_DATA(c), sizeof gs);
        if (gs > 0) seg = gs;
      }
    }
    peer_t *p = (t && s->from[i].sin_family == AF_INET) ? lookup_ip(t, ntohl(s->from[i].sin_addr.s_addr)) : NULL;
    if (!p) {
      /* Counted per datagram, as they were sent. */
      count(f, C_DROP_UNKNOWN_PEER, seg > 0 && len > 0 ? (uint64_t)((len + seg - 1) / seg) : 1);
      continue;
    }
    if (len == 0) {
      rx_one(f, s->ctx, t, p, d, 0, s->plain, tun);
      continue;
    }
    for (int off = 0; off < len; off += seg) rx_one(f, s->ctx, t, p, d + off, len - off < seg ? len - off : seg, s->plain, tun);
  }
  pthread_rwlock_unlock(&f->lock);
  return n;
}

/*
 * Give this thread more CPU weight than an ordinary task (nice -10, about
 * 9 times the share of a nice-0 task). A packet waits in the TUN queue or
 * the socket until the worker runs, so the worker's share of a busy CPU is
 * the tunnel's throughput, and how soon it is picked again after a CPU-bound
 * task's slice is the tunnel's latency; the kernel's own VXLAN path does the
 * same work in softirq, ahead of every task. It stays a fair task: a flood
 * of datagrams cannot starve the agent or the host, as a real-time priority
 * could. Measured in the lab (A/B runs of the same build, test/bench/udp):
 * plain throughput 3.3-3.7 x socat without it, 3.5-4.2 with it; RTT alike.
 *
 * Tried and rejected: a short EEVDF slice (sched_setattr, sched_runtime
 * 0.1 ms), which makes a woken worker preempt the task that woke it. Against
 * CPU-bound tasks that cut the tail, but the worker woken by a local sender
 * (ping, an application) preempted that sender in the middle of its send;
 * with the sender still runnable there, the next worker to wake (in the lab
 * the peer host's, on the same two CPUs) was placed on the other, idle, CPU
 * and paid a cross-CPU wake-up on every packet: RTT p50
 * 0.91-1.01 x socat against 0.83-0.91 without it, with the same p99 over
 * 2000 pings. Failure here (no CAP_SYS_NICE) costs speed only.
 */
#define WORKER_NICE (-10)
static void raise_weight(void) {
  (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), WORKER_NICE);
}

/*
 * One worker per TUN queue; worker 0 also owns the socket. Like a classic
 * single-threaded forwarder it takes whatever is ready on either side and
 * only sleeps when both are empty: the reply a write to the TUN device
 * triggers (a ping answered, a TCP ACK) is usually queued before the write
 * returns, and the same thread sends it without another thread waking up.
 * Out of work, it may poll on for a learned window before it sleeps (see
 * busy_poll.h): the answer to what it just sent is then forwarded without
 * a wake-up. One thread receives, so the replay windows need no lock.
 */
static void *worker_main(void *arg) {
  txarg_t *a = arg;
  fwd_t *f = a->f;
  pthread_setname_np(pthread_self(), "weft-udp-fwd");
  raise_weight();
  int tun = f->tun[a->queue];
  tx_state_t *tx = tx_state_new(f);
  rx_state_t *rx = a->queue == 0 ? rx_state_new(f) : NULL;
  if (!tx || (a->queue == 0 && !rx)) goto done;
  struct pollfd p[3] = {{.fd = f->stopfd, .events = POLLIN}, {.fd = tun, .events = POLLIN}, {.fd = f->sock, .events = POLLIN}};
  busy_poll_t bp = {0};
  int idle = 0, last = BUSY_AFTER_SEND;
  for (;;) {
    int sent = tx_batch(f, tx, tun);
    int received = rx ? rx_batch(f, rx) : 0;
    if (sent || received) {
      /* Under load the thread never idles: no clock read per batch then. */
      if (busy_poll_idle(&bp)) {
        count(f, C_BUSY_POLL_HITS, 1);
        count(f, C_BUSY_POLL_MICROS, (uint64_t)busy_poll_work(&bp, busy_poll_now(), 0) / 1000);
      }
      last = received ? BUSY_AFTER_RECEIVE : BUSY_AFTER_SEND;
      idle = 0;
      continue;
    }
    if (busy_poll_keep_polling(&bp, last, busy_poll_now())) {
      sched_yield();
      continue;
    }
    /* poll() reporting an error condition that no read clears must not become a busy loop. */
    if (++idle > 64) {
      struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
      nanosleep(&ms, NULL);
    }
    int r = poll(p, rx ? 3 : 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || p[0].revents || (p[1].revents & POLLNVAL)) break;
    count(f, C_BUSY_POLL_MICROS, (uint64_t)busy_poll_work(&bp, busy_poll_now(), 1) / 1000);
    if (!(p[1].revents & POLLIN) && !(rx && (p[2].revents & POLLIN))) continue;
    idle = 0;
  }
done:
  tx_state_free(tx);
  rx_state_free(rx);
  return NULL;
}

/* ---- table parsing -------------------------------------------------------- */

static int cmp_subnet(const void *a, const void *b) {
  uint32_t x = ((const peer_t *)a)->subnet, y = ((const peer_t *)b)->subnet;
  return x < y ? -1 : x > y;
}

static const peer_t *cmp_base;
static int cmp_ip(const void *a, const void *b) {
  uint32_t x = cmp_base[*(const int *)a].ip, y = cmp_base[*(const int *)b].ip;
  return x < y ? -1 : x > y;
}

/*
 * Buffer (little endian): u32 local subnet, u8 its prefix len, 3 zero bytes,
 * u32 count, then per peer
 *   u32 subnet, u8 prefix len, u8 nkeys, u16 port, u32 ip, nkeys x (u32 id, 32 tx, 32 rx)
 * Returns NULL on malformed input (TypeScript builds it, so that is a bug).
 */
static table_t *table_parse(const uint8_t *b, size_t len) {
  if (len < 12 || b[4] > 32) return NULL;
  uint32_t n, local;
  memcpy(&local, b, 4);
  uint8_t local_len = b[4];
  memcpy(&n, b + 8, 4);
  size_t off = 12;
  if (n > 1u << 20) return NULL;
  table_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->local_mask = local_len == 0 ? 0 : 0xffffffffu << (32 - local_len);
  t->local = local & t->local_mask;
  t->by_subnet = calloc(n ? n : 1, sizeof *t->by_subnet);
  t->by_ip = calloc(n ? n : 1, sizeof *t->by_ip);
  if (!t->by_subnet || !t->by_ip) goto bad;
  for (uint32_t i = 0; i < n; i++) {
    if (off + 12 > len) goto bad;
    peer_t *p = &t->by_subnet[i];
    uint32_t subnet, ip;
    uint16_t port;
    memcpy(&subnet, b + off, 4);
    uint8_t plen = b[off + 4], nk = b[off + 5];
    memcpy(&port, b + off + 6, 2);
    memcpy(&ip, b + off + 8, 4);
    off += 12;
    if (plen > 32 || nk > MAX_KEYS || off + (size_t)nk * (4 + 2 * KEY_LEN) > len) goto bad;
    p->mask = plen == 0 ? 0 : 0xffffffffu << (32 - plen);
    p->subnet = subnet & p->mask;
    p->ip = ip;
    p->port = port;
    p->nkeys = nk;
    for (int k = 0; k < nk; k++) {
      memcpy(&p->keys[k].id, b + off, 4);
      memcpy(p->keys[k].tx, b + off + 4, KEY_LEN);
      memcpy(p->keys[k].rx, b + off + 4 + KEY_LEN, KEY_LEN);
      off += 4 + 2 * KEY_LEN;
    }
    p->addr.sin_family = AF_INET;
    p->addr.sin_port = htons(port);
    p->addr.sin_addr.s_addr = htonl(ip);
  }
  t->n = (int)n;
  qsort(t->by_subnet, n, sizeof *t->by_subnet, cmp_subnet);
  for (uint32_t i = 0; i < n; i++) t->by_ip[i] = (int)i;
  cmp_base = t->by_subnet; /* only the JS thread parses tables */
  qsort(t->by_ip, n, sizeof *t->by_ip, cmp_ip);
  return t;
bad:
  table_free(t);
  return NULL;
}

/* ---- Node-API surface ------------------------------------------------------ */

static void fwd_stop(fwd_t *f) {
  if (f->closed) return;
  f->closed = 1;
  uint64_t one = 1;
  if (write(f->stopfd, &one, sizeof one) < 0) { /* eventfd writes of 1 cannot fail */ }
  if (f->started) {
    for (int q = 0; q < f->nq; q++) pthread_join(f->tx[q].th, NULL);
  }
  for (int q = 0; q < f->nq; q++) close(f->tun[q]);
  close(f->sock);
  close(f->stopfd);
  table_free(f->table);
  f->table = NULL;
  pthread_rwlock_destroy(&f->lock);
}

static void fwd_finalize(napi_env env, void *data, void *hint) {
  fwd_stop(data);
  free(data);
}

static fwd_t *fwd_of(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  void *data = NULL;
  if (napi_get_cb_info(env, info, argc, argv, NULL, &data) != napi_ok) return NULL;
  return data;
}

static napi_value js_set_peers(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  fwd_t *f = fwd_of(env, info, &argc, argv);
  bool isbuf = false;
  if (!f || argc < 1 || napi_is_buffer(env, argv[0], &isbuf) != napi_ok || !isbuf) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "setPeers(table: Buffer)");
    return NULL;
  }
  if (f->closed) {
    napi_throw_error(env, "ERR_CLOSED", "udp forwarder is closed");
    return NULL;
  }
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok) return NULL;
  table_t *t = table_parse(data, len);
  if (!t) {
    napi_throw_error(env, "ERR_INVALID_ARG_VALUE", "setPeers: malformed peer table");
    return NULL;
  }
  pthread_rwlock_wrlock(&f->lock);
  table_t *old = f->table;
  if (old) {
    for (int i = 0; i < t->n; i++) {
      peer_t *o = lookup_ip(old, t->by_subnet[i].ip);
      if (o) t->by_subnet[i].replay = o->replay;
    }
  }
  f->table = t;
  pthread_rwlock_unlock(&f->lock);
  table_free(old);
  return NULL;
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  fwd_t *f = fwd_of(env, info, &argc, NULL);
  napi_value out, v;
  if (!f || napi_create_object(env, &out) != napi_ok) return NULL;
  for (int i = 0; i < C_COUNT; i++) {
    /* Doubles are exact to 2^53: years of packets at line rate. */
    if (napi_create_double(env, (double)atomic_load(&f->c[i]), &v) != napi_ok ||
        napi_set_named_property(env, out, counter_names[i], v) != napi_ok)
      return NULL;
  }
  return out;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  fwd_t *f = fwd_of(env, info, &argc, NULL);
  if (f) fwd_stop(f);
  return NULL;
}

static int prop_int(napi_env env, napi_value obj, const char *key, int64_t *out) {
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok || t != napi_number) return -1;
  return napi_get_value_int64(env, v, out) == napi_ok ? 0 : -1;
}

/* obj[key] when it is a boolean, else dflt. */
static int opt_bool(napi_env env, napi_value obj, const char *key, int dflt) {
  napi_value v;
  napi_valuetype t;
  bool b;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok || t != napi_boolean) return dflt;
  return napi_get_value_bool(env, v, &b) == napi_ok ? b : dflt;
}

/*
 * udpForwarderOpen({ tunFds: number[], bindIp: number (host order), port, sealed: boolean, epoch, gso?, gro? })
 *   -> { setPeers(buf), stats(), close() }
 * Takes ownership of the TUN fds (closed by close() or when collected).
 */
napi_value udp_forwarder_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], fds, out;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int64_t bind_ip, port, epoch;
  uint32_t nq = 0;
  bool sealed = false, isarr = false;
  napi_value vsealed;
  if (argc < 1 || prop_int(env, argv[0], "bindIp", &bind_ip) || prop_int(env, argv[0], "port", &port) ||
      prop_int(env, argv[0], "epoch", &epoch) || napi_get_named_property(env, argv[0], "tunFds", &fds) != napi_ok ||
      napi_is_array(env, fds, &isarr) != napi_ok || !isarr || napi_get_array_length(env, fds, &nq) != napi_ok || nq < 1 ||
      nq > MAX_QUEUES || napi_get_named_property(env, argv[0], "sealed", &vsealed) != napi_ok ||
      napi_get_value_bool(env, vsealed, &sealed) != napi_ok || port < 1 || port > 65535 || epoch < 0 || epoch > 0xffffffffLL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                          "udpForwarderOpen({ tunFds: number[1..8], bindIp: number, port: 1..65535, sealed: boolean, epoch: u32 })");
    return NULL;
  }
  int use_gso = opt_bool(env, argv[0], "gso", 1), use_gro = opt_bool(env, argv[0], "gro", 1);
  fwd_t *f = calloc(1, sizeof *f);
  if (!f) return weft_throw_errno(env, ENOMEM, "calloc", "udp forwarder");
  f->nq = (int)nq;
  f->sealed = sealed;
  f->epoch = (uint32_t)epoch;
  for (uint32_t q = 0; q < nq; q++) {
    napi_value v;
    int64_t fd;
    if (napi_get_element(env, fds, q, &v) != napi_ok || napi_get_value_int64(env, v, &fd) != napi_ok) {
      free(f);
      return NULL;
    }
    f->tun[q] = (int)fd;
  }
  f->stopfd = eventfd(0, EFD_CLOEXEC);
  f->sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (f->stopfd < 0 || f->sock < 0) {
    int e = errno;
    if (f->stopfd >= 0) close(f->stopfd);
    if (f->sock >= 0) close(f->sock);
    free(f);
    return weft_throw_errno(env, e, "socket", "udp forwarder");
  }
  int buf = 4 << 20;
  if (setsockopt(f->sock, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) < 0)
    setsockopt(f->sock, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  if (setsockopt(f->sock, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) < 0)
    setsockopt(f->sock, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  /* The overlay MTU is sized so that no datagram needs fragmenting; DF makes a mistake visible. */
  int pmtu = IP_PMTUDISC_DO;
  setsockopt(f->sock, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
  /* Batching in the kernel too (see tx_main); both are optional, both default on where the kernel has them. */
  atomic_init(&f->gso, use_gso);
  int one = 1;
  f->gro = use_gro && setsockopt(f->sock, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl((uint32_t)bind_ip)};
  if (bind(f->sock, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(f->sock);
    close(f->stopfd);
    free(f);
    return weft_throw_errno(env, e, "bind", "udp forwarder");
  }
  pthread_rwlock_init(&f->lock, NULL);
  for (int i = 0; i < C_COUNT; i++) atomic_init(&f->c[i], 0);
  atomic_init(&f->counter, 0);

  int err = 0, created = 0;
  for (int q = 0; q < f->nq && !err; q++) {
    f->tx[q].f = f;
    f->tx[q].queue = q;
    err = pthread_create(&f->tx[q].th, NULL, worker_main, &f->tx[q]);
    if (!err) created++;
  }
  if (err) {
    /* Stop what did start, then fail. */
    uint64_t one = 1;
    if (write(f->stopfd, &one, sizeof one) < 0) { /* cannot fail */ }
    for (int i = 0; i < created; i++) pthread_join(f->tx[i].th, NULL);
    close(f->sock);
    close(f->stopfd);
    pthread_rwlock_destroy(&f->lock);
    free(f);
    return weft_throw_errno(env, err, "pthread_create", "udp forwarder");
  }
  f->started = 1;

  if (napi_create_object(env, &out) != napi_ok || napi_wrap(env, out, f, fwd_finalize, NULL, NULL) != napi_ok) {
    fwd_stop(f);
    free(f);
    return NULL;
  }
  napi_value fn;
  const struct { const char *name; napi_callback cb; } methods[] = {{"setPeers", js_set_peers}, {"stats", js_stats}, {"close", js_close}};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    if (napi_create_function(env, methods[i].name, NAPI_AUTO_LENGTH, methods[i].cb, f, &fn) != napi_ok ||
        napi_set_named_property(env, out, methods[i].name, fn) != napi_ok)
      return NULL;
  }
  return out;
}
